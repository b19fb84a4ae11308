package guest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// DialOptions tune Dial. The zero value is what xvmview uses.
type DialOptions struct {
	// KeepAlive is the interval between keepalive@openssh.com requests;
	// 0 means the target's ServerAliveInterval, else 5 s; negative disables
	// keepalives.
	KeepAlive time.Duration
	// KeepAliveMisses is how many unanswered keepalives end the connection;
	// 0 means the target's ServerAliveCountMax, else 3.
	KeepAliveMisses int
	// AgentSocket is the ssh-agent socket; "" means the target's
	// IdentityAgent, else $SSH_AUTH_SOCK.
	AgentSocket string
	// NoAgent skips the agent even when a socket is known.
	NoAgent bool
	// Prompt asks the user for key passphrases and about unknown host
	// keys; nil never asks (encrypted keys are then skipped unless the agent
	// has them, and unknown host keys refused). A target with BatchMode
	// never asks either.
	Prompt Prompter
}

// Client is an authenticated SSH connection to a guest, possibly through
// jump hosts or a ProxyCommand. Close it when done.
type Client struct {
	conn      *ssh.Client
	first     net.Conn      // the first hop's connection: TCP or the ProxyCommand's pipes
	hops      []*ssh.Client // jump hosts' connections, first to last
	addr      string        // the guest's host:port
	direct    bool          // first is a TCP connection to the guest itself
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the guest t, through t.Jumps (each one a real SSH
// connection, its host key checked strictly, the next hop dialled through
// it) and through t.ProxyCommand or that of the first hop, checks the
// guest's host key strictly against t.KnownHostsFiles and logs in with the
// agent's keys, then the identity files (encrypted ones through o.Prompt,
// asked only when the guest accepts the key). ctx bounds the whole dial
// including the handshakes; t.ConnectTimeout bounds each hop's connection
// and handshake.
//
// It returns *UnreachableError when no connection could be made,
// *HostKeyError when a host key is unknown or changed (nothing was sent to
// that host then), *AuthError when every key was refused, *PassphraseError
// when a key's passphrase was wrong every time or not given,
// *HandshakeDroppedError when an sshd kept closing the connection before the
// key exchange (each such try is repeated after a jittered, growing pause
// while ctx's deadline allows: sshd's MaxStartups drops logins beyond 10 at
// once), and the context's error (wrapped) when ctx ended first. Errors of a
// jump host are wrapped as "jump host ALIAS: ..." and keep their type.
func Dial(ctx context.Context, t Target, o DialOptions) (*Client, error) {
	chain := append(slices.Clone(t.Jumps), t)
	keys := newKeyCache(ctx, o.Prompt)
	c := &Client{addr: t.Addr(), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			for i := len(c.hops) - 1; i >= 0; i-- {
				c.hops[i].Close()
			}
			if c.first != nil {
				c.first.Close()
			}
		}
	}()
	var final *ssh.Client
	for i, h := range chain {
		h.Jumps = nil
		var connect func(ctx context.Context) (net.Conn, error)
		switch {
		case i > 0:
			connect = viaJump(c.hops[i-1], chain[i-1].Alias, h.Addr())
		case h.ProxyCommand != "":
			connect = func(ctx context.Context) (net.Conn, error) { return startProxy(ctx, h.ProxyCommand, h.Addr()) }
		default:
			connect = func(ctx context.Context) (net.Conn, error) { return dialTCP(ctx, h) }
		}
		sc, conn, err := dialHop(ctx, h, o, keys, connect, i < len(chain)-1)
		if err != nil {
			if i < len(chain)-1 {
				return nil, fmt.Errorf("jump host %s: %w", h.Alias, err)
			}
			return nil, err
		}
		if i == 0 {
			c.first = conn
			c.direct = h.ProxyCommand == "" && len(chain) == 1
		}
		if i < len(chain)-1 {
			c.hops = append(c.hops, sc)
		} else {
			final = sc
		}
	}
	ok = true
	c.conn = final
	go func() {
		c.conn.Wait()
		close(c.done)
	}()
	interval, misses := o.KeepAlive, o.KeepAliveMisses
	if interval == 0 {
		interval = cmp.Or(t.ServerAliveInterval, 5*time.Second)
	}
	if misses <= 0 {
		misses = cmp.Or(t.ServerAliveCountMax, 3)
	}
	if interval > 0 {
		go c.keepalive(interval, misses)
	}
	return c, nil
}

// viaJump returns what connects to addr through the SSH connection jc to
// the jump host named via.
func viaJump(jc *ssh.Client, via, addr string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		conn, err := jc.DialContext(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("connect to %s through jump host %s: %w", addr, via, ctx.Err())
			}
			return nil, &UnreachableError{Addr: addr, Via: via, Err: err}
		}
		return conn, nil
	}
}

// dialTCP connects to h directly.
func dialTCP(ctx context.Context, h Target) (net.Conn, error) {
	addr := h.Addr()
	var d net.Dialer
	tcp, err := d.DialContext(ctx, cmp.Or(h.Network, "tcp"), addr)
	if err != nil {
		if errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled {
			return nil, fmt.Errorf("connect to guest %s: %w", addr, context.Canceled)
		}
		if closedEarly(err) { // accepted and reset at once
			return nil, &droppedError{fmt.Errorf("connect to guest %s: %w", addr, err)}
		}
		return nil, &UnreachableError{Addr: addr, Err: err}
	}
	return tcp, nil
}

// dialHop makes the SSH connection to one hop over the connection connect
// makes, retrying a handshake that sshd dropped before the key exchange.
func dialHop(ctx context.Context, h Target, o DialOptions, keys *keyCache, connect func(context.Context) (net.Conn, error), jump bool) (*ssh.Client, net.Conn, error) {
	addr := h.Addr()
	auth := loadAuth(ctx, h, o, keys)
	defer auth.close()
	var b backoff
	for tries := 1; ; tries++ {
		sc, conn, err := dialOnce(ctx, h, o, auth, connect, jump)
		var de *droppedError
		if !errors.As(err, &de) {
			return sc, conn, err
		}
		// sshd closed the connection before the key exchange: MaxStartups
		// (default 10:30:100) drops logins beyond 10 in progress at once.
		// Try again a little later, while the caller's deadline allows.
		wait := b.next()
		if dl, ok := ctx.Deadline(); (ok && time.Until(dl) < wait) || tries >= maxHandshakeTries {
			return nil, nil, &HandshakeDroppedError{Addr: addr, Tries: tries, Err: de.err}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if ctx.Err() == context.Canceled {
				return nil, nil, fmt.Errorf("ssh handshake with %s: %w", addr, context.Canceled)
			}
			return nil, nil, &HandshakeDroppedError{Addr: addr, Tries: tries, Err: de.err}
		case <-t.C:
		}
	}
}

// droppedError is a handshake the guest's sshd ended before the key
// exchange got to its host key: Dial tries again.
type droppedError struct{ err error }

func (e *droppedError) Error() string { return e.err.Error() }

// dialOnce is one try of dialHop. It returns *droppedError when the host
// closed the connection before it showed its host key.
func dialOnce(ctx context.Context, t Target, o DialOptions, auth *auth, connect func(context.Context) (net.Conn, error), jump bool) (*ssh.Client, net.Conn, error) {
	addr := t.Addr()
	// A fresh check per try: every try checks the host key strictly.
	hk, err := newHostKeyCheck(t)
	if err != nil {
		return nil, nil, err
	}
	hk.jump, hk.ctx = jump, ctx
	if !t.BatchMode && t.StrictHostKeyChecking != "yes" {
		hk.prompt = o.Prompt
	}
	// ConnectTimeout bounds making the connection and the wait for the
	// host's key, as in ssh(1); the rest of the handshake, which may wait
	// for the user's answer, only ctx.
	cctx := ctx
	if t.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeoutCause(ctx, t.ConnectTimeout,
			fmt.Errorf("no connection within ConnectTimeout %s", t.ConnectTimeout))
		defer cancel()
	}
	conn, err := connect(cctx)
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return nil, nil, &UnreachableError{Addr: addr, Err: context.Cause(cctx)}
		}
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var slow atomic.Bool
	if t.ConnectTimeout > 0 {
		silent := time.AfterFunc(t.ConnectTimeout, func() {
			if !hk.called.Load() {
				slow.Store(true)
				conn.Close()
			}
		})
		defer silent.Stop()
	}

	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeysCallback(auth.signersFunc)},
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms(addr),
		Config: ssh.Config{
			// Both are fast in Go (ML-KEM costs well under a millisecond);
			// OpenSSH's slow default, sntrup761, is not implemented by Go.
			KeyExchanges: prefer(ssh.SupportedAlgorithms().KeyExchanges,
				ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519),
			Ciphers: prefer(ssh.SupportedAlgorithms().Ciphers, ssh.CipherAES128GCM),
		},
	}
	sc, chans, reqs, err := ssh.NewClientConn(rawIO(conn), addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		conn.Close()
		return nil, nil, fmt.Errorf("ssh handshake with %s: %w", addr, ctx.Err())
	}
	if err != nil {
		pe := proxyExit(conn) // before Close ends the command
		conn.Close()
		if slow.Load() {
			return nil, nil, &UnreachableError{Addr: addr, Err: fmt.Errorf("no SSH answer within ConnectTimeout %s", t.ConnectTimeout)}
		}
		if hk.err != nil {
			return nil, nil, hk.err
		}
		if auth.err != nil {
			return nil, nil, auth.err
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, nil, &AuthError{User: t.User, Addr: addr, Tried: auth.tried, Encrypted: auth.encrypted, Err: err}
		}
		if pe != nil {
			return nil, nil, pe
		}
		if !hk.called.Load() && closedEarly(err) {
			return nil, nil, &droppedError{fmt.Errorf("ssh handshake with %s: %w", addr, err)}
		}
		return nil, nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	if hk.err != nil { // cannot happen: the callback's error fails the handshake
		sc.Close()
		return nil, nil, hk.err
	}
	return ssh.NewClient(sc, chans, reqs), conn, nil
}

// prefer returns all with first moved to the front, in the given order.
func prefer(all []string, first ...string) []string {
	out := slices.Clone(first)
	for _, a := range all {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// keepalive sends keepalive@openssh.com every interval and closes the
// connection when misses of them in a row got no answer in time. Any answer
// (OpenSSH replies "failure") proves the guest alive.
func (c *Client) keepalive(interval time.Duration, misses int) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	answered := make(chan struct{}, 1)
	pending, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case <-answered:
			pending, missed = false, 0
		case <-tick.C:
			if pending {
				missed++
				if missed >= misses {
					c.conn.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				if _, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil); err == nil {
					answered <- struct{}{}
				}
			}()
		}
	}
}

// Ping asks the guest for an answer (keepalive@openssh.com) and waits for it.
// OpenSSH's sshd answers the first request after login only once it has
// set up the session (about 40 ms on OpenSSH 9.2), so a caller that pings
// right after Dial, while it waits for something else anyway, takes that
// delay off its critical path. It returns ctx's error, or an error if the
// connection ended. With ctx already done it sends nothing and returns ctx's
// error: a select between a ready answer and a done context would pick
// either at random.
func (c *Client) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("ping guest %s: %w", c.RemoteAddr(), err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when the connection has ended: dropped, keepalives
// unanswered, or Close.
func (c *Client) Done() <-chan struct{} { return c.done }

// LocalIP is our end of the TCP connection: the address the guest sees us
// at. It is nil when the guest is reached through a jump host or a
// ProxyCommand: the guest does not see this machine then.
func (c *Client) LocalIP() net.IP {
	if !c.direct {
		return nil
	}
	if a, ok := c.first.LocalAddr().(*net.TCPAddr); ok {
		return a.IP
	}
	return nil
}

// RemoteAddr is the guest's "host:port": the peer address of a direct
// connection, else the guest's HostName and port.
func (c *Client) RemoteAddr() string {
	if c.direct {
		return c.first.RemoteAddr().String()
	}
	return c.addr
}

// Close ends the connection and every session on it, then the jump hosts'
// connections and a ProxyCommand. It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if err := c.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.closeErr = fmt.Errorf("close connection to %s: %w", c.RemoteAddr(), err)
		}
		for i := len(c.hops) - 1; i >= 0; i-- {
			c.hops[i].Close()
		}
		c.first.Close()
	})
	return c.closeErr
}

// hostKeyCheck is a strict known_hosts check that remembers why it refused.
// With a prompt, an unknown key (never a changed one) is accepted when the
// user says yes, and recorded in the first known_hosts file.
type hostKeyCheck struct {
	t      Target
	db     *knownhosts.HostKeyDB // nil: no known_hosts file exists
	err    *HostKeyError
	called atomic.Bool // the guest got as far as showing its host key
	jump   bool        // t is a jump host
	prompt Prompter
	ctx    context.Context
}

func newHostKeyCheck(t Target) (*hostKeyCheck, error) {
	if len(t.KnownHostsFiles) == 0 {
		return nil, fmt.Errorf("no known_hosts file for guest %s: host keys are always checked", t.Alias)
	}
	var files []string
	for _, f := range append(slices.Clone(t.KnownHostsFiles), t.GlobalKnownHostsFiles...) {
		_, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read known hosts: %w", err)
		}
		files = append(files, f)
	}
	hk := &hostKeyCheck{t: t}
	if len(files) > 0 {
		db, err := knownhosts.NewDB(files...)
		if err != nil {
			return nil, fmt.Errorf("read known hosts: %w", err)
		}
		hk.db = db
	}
	return hk, nil
}

// algorithms puts the host key algorithms known_hosts has for addr first, so
// the guest presents a key we can check, and keeps the rest so that a guest
// whose key type changed still gets reported as a changed key.
func (hk *hostKeyCheck) algorithms(addr string) []string {
	all := ssh.SupportedAlgorithms().HostKeys
	if hk.db == nil {
		return nil
	}
	known := slices.DeleteFunc(hk.db.HostKeyAlgorithms(addr), func(a string) bool { return !slices.Contains(all, a) })
	return prefer(all, known...)
}

func (hk *hostKeyCheck) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	hk.called.Store(true)
	e := &HostKeyError{
		Alias:       hk.t.Alias,
		Host:        hk.t.HostName,
		Addr:        hostname,
		Fingerprint: ssh.FingerprintSHA256(key),
		KeyType:     key.Type(),
		KnownHosts:  hk.t.KnownHostsFiles[0],
		Jump:        hk.jump,
	}
	if hk.db == nil {
		return hk.unknown(e, key)
	}
	err := hk.db.HostKeyCallback()(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *xknownhosts.KeyError
	if !errors.As(err, &ke) {
		var re *xknownhosts.RevokedError
		if errors.As(err, &re) {
			return fmt.Errorf("host key %s of %s is revoked in %s line %d", e.Fingerprint, hostname, re.Revoked.Filename, re.Revoked.Line)
		}
		return fmt.Errorf("check host key of %s: %w", hostname, err)
	}
	if len(ke.Want) > 0 {
		e.Changed = true
		e.KnownHosts = ke.Want[0].Filename
		e.Line = ke.Want[0].Line
		hk.err = e
		return e
	}
	return hk.unknown(e, key)
}

// unknown handles a host key no known_hosts file has: refused, unless the
// prompt gets the user's yes, in which case it is recorded (hashed when
// HashKnownHosts says so) before the login goes on.
func (hk *hostKeyCheck) unknown(e *HostKeyError, key ssh.PublicKey) error {
	if hk.prompt == nil {
		hk.err = e
		return e
	}
	ctx := hk.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	yes, err := hk.prompt.ConfirmHostKey(ctx, HostKeyQuestion{
		Alias: hk.t.Alias, Addr: e.Addr, KeyType: e.KeyType, Fingerprint: e.Fingerprint, Jump: hk.jump})
	if err != nil || !yes {
		e.Declined = err == nil || !errors.Is(err, ErrNoPrompt)
		hk.err = e
		return e
	}
	if err := AddKnownHost(hk.t, key, hk.t.HashKnownHosts); err != nil {
		return err
	}
	return nil
}

// auth collects the keys Dial offers one hop: the agent's, then identity
// files (with their certificates first), encrypted ones unlocked through the
// key cache when the hop accepts them.
type auth struct {
	agentConn net.Conn
	signers   []ssh.Signer
	tried     []string
	encrypted []string
	err       error // a passphrase failure: ends the login with that error
}

func loadAuth(ctx context.Context, t Target, o DialOptions, keys *keyCache) *auth {
	a := &auth{}
	var agentSigners []ssh.Signer
	if sock := agentSocket(t, o); sock != "" {
		var d net.Dialer
		if conn, err := d.DialContext(ctx, "unix", sock); err == nil {
			a.agentConn = conn
			if ss, err := agent.NewClient(conn).Signers(); err == nil {
				agentSigners = ss
			}
		}
	}
	inAgent := func(k ssh.PublicKey) bool {
		return slices.ContainsFunc(agentSigners, func(s ssh.Signer) bool { return bytes.Equal(s.PublicKey().Marshal(), k.Marshal()) })
	}
	// The identity files' keys, usable or not, for IdentitiesOnly and to
	// pair certificates with.
	type identity struct {
		file   string
		pub    ssh.PublicKey
		signer ssh.Signer // nil when unusable
	}
	var ids []identity
	for _, f := range t.IdentityFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			continue // ssh(1) skips missing identity files too
		}
		s, err := ssh.ParsePrivateKey(pem)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			pub := pm.PublicKey
			if pub == nil {
				pub = readPublicKey(f + ".pub")
			}
			switch {
			case pub != nil && inAgent(pub):
				ids = append(ids, identity{file: f, pub: pub})
			case pub != nil && keys.prompt != nil && !t.BatchMode:
				ids = append(ids, identity{file: f, pub: pub, signer: keys.lazy(f, pem, pub, a)})
			default:
				a.encrypted = append(a.encrypted, f)
			}
		case err != nil:
			a.tried = append(a.tried, f+" (unreadable: "+err.Error()+")")
		case inAgent(s.PublicKey()):
			ids = append(ids, identity{file: f, pub: s.PublicKey()})
		default:
			ids = append(ids, identity{file: f, pub: s.PublicKey(), signer: s})
		}
	}
	certFiles := slices.Clone(t.CertificateFiles)
	for _, id := range ids {
		if fileExists(id.file + "-cert.pub") {
			certFiles = append(certFiles, id.file+"-cert.pub")
		}
	}
	var certs []*ssh.Certificate
	for _, f := range certFiles {
		if c, ok := readPublicKey(f).(*ssh.Certificate); ok {
			certs = append(certs, c)
		}
	}
	wanted := func(k ssh.PublicKey) bool {
		if !t.IdentitiesOnly {
			return true
		}
		m := k.Marshal()
		if slices.ContainsFunc(ids, func(id identity) bool { return bytes.Equal(id.pub.Marshal(), m) }) {
			return true
		}
		return slices.ContainsFunc(certs, func(c *ssh.Certificate) bool {
			return bytes.Equal(c.Marshal(), m) || bytes.Equal(c.Key.Marshal(), m)
		})
	}
	add := func(s ssh.Signer, what string) {
		for _, c := range certs {
			if bytes.Equal(c.Key.Marshal(), s.PublicKey().Marshal()) {
				if cs, err := ssh.NewCertSigner(c, s); err == nil {
					a.signers = append(a.signers, cs)
					a.tried = append(a.tried, what+" with its certificate")
				}
			}
		}
		a.signers = append(a.signers, s)
		a.tried = append(a.tried, what)
	}
	for _, s := range agentSigners {
		if wanted(s.PublicKey()) {
			add(s, "agent key "+describeKey(s.PublicKey()))
		}
	}
	for _, id := range ids {
		if id.signer != nil {
			add(id.signer, id.file)
		}
	}
	return a
}

// agentSocket is the ssh-agent to ask for t: o.AgentSocket, else t's
// IdentityAgent, else $SSH_AUTH_SOCK; "" for none.
func agentSocket(t Target, o DialOptions) string {
	switch {
	case o.NoAgent:
		return ""
	case o.AgentSocket != "":
		return o.AgentSocket
	case t.IdentityAgent == "none":
		return ""
	case t.IdentityAgent == "":
		return os.Getenv("SSH_AUTH_SOCK")
	}
	return t.IdentityAgent
}

// readPublicKey reads a public key or certificate in authorized_keys form
// (FILE.pub, FILE-cert.pub); nil when it cannot.
func readPublicKey(path string) ssh.PublicKey {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil
	}
	return k
}

func (a *auth) signersFunc() ([]ssh.Signer, error) { return a.signers, nil }

// close drops the agent connection; the signers are needed only during the
// handshake.
func (a *auth) close() {
	if a.agentConn != nil {
		a.agentConn.Close()
	}
}

func describeKey(k ssh.PublicKey) string {
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
