package guest

import (
	"bytes"
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
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// DialOptions tune Dial. The zero value is what xvmview uses.
type DialOptions struct {
	// KeepAlive is the interval between keepalive@openssh.com requests;
	// 0 means 5 s, negative disables keepalives.
	KeepAlive time.Duration
	// KeepAliveMisses is how many unanswered keepalives end the connection;
	// 0 means 3.
	KeepAliveMisses int
	// AgentSocket is the ssh-agent socket; "" means $SSH_AUTH_SOCK.
	AgentSocket string
	// NoAgent skips the agent even when a socket is known.
	NoAgent bool
}

// Client is an authenticated SSH connection to a guest. Close it when done.
type Client struct {
	conn      *ssh.Client
	tcp       net.Conn
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the guest t, checks its host key strictly against
// t.KnownHostsFiles and logs in with the agent's keys, then the unencrypted
// identity files. ctx bounds the whole dial including the handshake.
//
// It returns *UnreachableError when no TCP connection could be made,
// *HostKeyError when the host key is unknown or changed (nothing was sent to
// the guest then), *AuthError when every key was refused,
// *HandshakeDroppedError when the guest's sshd kept closing the connection
// before the key exchange (each such try is repeated after a jittered,
// growing pause while ctx's deadline allows: sshd's MaxStartups drops
// logins beyond 10 at once), and the context's error (wrapped) when ctx
// ended first.
func Dial(ctx context.Context, t Target, o DialOptions) (*Client, error) {
	addr := t.Addr()
	auth := loadAuth(ctx, t, o)
	defer auth.close()
	var b backoff
	for tries := 1; ; tries++ {
		c, err := dialOnce(ctx, t, o, auth)
		var de *droppedError
		if !errors.As(err, &de) {
			return c, err
		}
		// sshd closed the connection before the key exchange: MaxStartups
		// (default 10:30:100) drops logins beyond 10 in progress at once.
		// Try again a little later, while the caller's deadline allows.
		wait := b.next()
		if dl, ok := ctx.Deadline(); (ok && time.Until(dl) < wait) || tries >= maxHandshakeTries {
			return nil, &HandshakeDroppedError{Addr: addr, Tries: tries, Err: de.err}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if ctx.Err() == context.Canceled {
				return nil, fmt.Errorf("ssh handshake with %s: %w", addr, context.Canceled)
			}
			return nil, &HandshakeDroppedError{Addr: addr, Tries: tries, Err: de.err}
		case <-t.C:
		}
	}
}

// droppedError is a handshake the guest's sshd ended before the key
// exchange got to its host key: Dial tries again.
type droppedError struct{ err error }

func (e *droppedError) Error() string { return e.err.Error() }

// dialOnce is one try of Dial. It returns *droppedError when the guest
// closed the connection before it showed its host key.
func dialOnce(ctx context.Context, t Target, o DialOptions, auth *auth) (*Client, error) {
	addr := t.Addr()
	// A fresh check per try: every try checks the host key strictly.
	hk, err := newHostKeyCheck(t)
	if err != nil {
		return nil, err
	}

	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled {
			return nil, fmt.Errorf("connect to guest %s: %w", addr, context.Canceled)
		}
		if closedEarly(err) { // accepted and reset at once
			return nil, &droppedError{fmt.Errorf("connect to guest %s: %w", addr, err)}
		}
		return nil, &UnreachableError{Addr: addr, Err: err}
	}
	stop := context.AfterFunc(ctx, func() { tcp.Close() })

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
	sc, chans, reqs, err := ssh.NewClientConn(rawIO(tcp), addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		tcp.Close()
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, ctx.Err())
	}
	if err != nil {
		tcp.Close()
		if hk.err != nil {
			return nil, hk.err
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, &AuthError{User: t.User, Addr: addr, Tried: auth.tried, Encrypted: auth.encrypted, Err: err}
		}
		if !hk.called && closedEarly(err) {
			return nil, &droppedError{fmt.Errorf("ssh handshake with %s: %w", addr, err)}
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	if hk.err != nil { // cannot happen: the callback's error fails the handshake
		sc.Close()
		return nil, hk.err
	}

	c := &Client{conn: ssh.NewClient(sc, chans, reqs), tcp: tcp, done: make(chan struct{})}
	go func() {
		c.conn.Wait()
		close(c.done)
	}()
	interval, misses := o.KeepAlive, o.KeepAliveMisses
	if interval == 0 {
		interval = 5 * time.Second
	}
	if misses <= 0 {
		misses = 3
	}
	if interval > 0 {
		go c.keepalive(interval, misses)
	}
	return c, nil
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
// connection ended.
func (c *Client) Ping(ctx context.Context) error {
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

// LocalIP is our end of the TCP connection: the address the guest sees us at.
func (c *Client) LocalIP() net.IP {
	if a, ok := c.tcp.LocalAddr().(*net.TCPAddr); ok {
		return a.IP
	}
	return nil
}

// RemoteAddr is the guest's "host:port".
func (c *Client) RemoteAddr() string { return c.tcp.RemoteAddr().String() }

// Close ends the connection and every session on it. It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if err := c.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.closeErr = fmt.Errorf("close connection to %s: %w", c.RemoteAddr(), err)
		}
	})
	return c.closeErr
}

// hostKeyCheck is a strict known_hosts check that remembers why it refused.
type hostKeyCheck struct {
	t      Target
	db     *knownhosts.HostKeyDB // nil: no known_hosts file exists
	err    *HostKeyError
	called bool // the guest got as far as showing its host key
}

func newHostKeyCheck(t Target) (*hostKeyCheck, error) {
	if len(t.KnownHostsFiles) == 0 {
		return nil, fmt.Errorf("no known_hosts file for guest %s: host keys are always checked", t.Alias)
	}
	var files []string
	for _, f := range t.KnownHostsFiles {
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
	hk.called = true
	e := &HostKeyError{
		Alias:       hk.t.Alias,
		Host:        hk.t.HostName,
		Addr:        hostname,
		Fingerprint: ssh.FingerprintSHA256(key),
		KeyType:     key.Type(),
		KnownHosts:  hk.t.KnownHostsFiles[0],
	}
	if hk.db == nil {
		hk.err = e
		return e
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
	}
	hk.err = e
	return e
}

// auth collects the keys Dial offers: the agent's, then identity files.
type auth struct {
	agentConn net.Conn
	signers   []ssh.Signer
	tried     []string
	encrypted []string
}

func loadAuth(ctx context.Context, t Target, o DialOptions) *auth {
	a := &auth{}
	var agentKeys [][]byte
	sock := o.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" && !o.NoAgent {
		var d net.Dialer
		if conn, err := d.DialContext(ctx, "unix", sock); err == nil {
			a.agentConn = conn
			if ss, err := agent.NewClient(conn).Signers(); err == nil {
				for _, s := range ss {
					a.signers = append(a.signers, s)
					agentKeys = append(agentKeys, s.PublicKey().Marshal())
					a.tried = append(a.tried, "agent key "+describeKey(s.PublicKey()))
				}
			}
		}
	}
	inAgent := func(k ssh.PublicKey) bool {
		return slices.ContainsFunc(agentKeys, func(b []byte) bool { return bytes.Equal(b, k.Marshal()) })
	}
	for _, f := range t.IdentityFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			continue // ssh(1) skips missing identity files too
		}
		s, err := ssh.ParsePrivateKey(pem)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			if pm.PublicKey == nil || !inAgent(pm.PublicKey) {
				a.encrypted = append(a.encrypted, f)
			}
		case err != nil:
			a.tried = append(a.tried, f+" (unreadable: "+err.Error()+")")
		case inAgent(s.PublicKey()):
		default:
			a.signers = append(a.signers, s)
			a.tried = append(a.tried, f)
		}
	}
	return a
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
