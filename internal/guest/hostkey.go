package guest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// opensshHostKeyOrder is OpenSSH's default preference among plain (not
// certificate) host key algorithms, so that a guest with several host keys
// shows the same one here as it does to `ssh` and to `ssh-keygen -lf
// /etc/ssh/ssh_host_ed25519_key.pub` on its console.
var opensshHostKeyOrder = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// errGotKey aborts FetchHostKey's handshake once the key is in hand.
var errGotKey = errors.New("host key captured")

// FetchHostKey connects to the guest t and returns the host key it presents,
// without checking it and without logging in: the handshake is aborted as
// soon as the key has arrived, so nothing but the key exchange reaches the
// guest. Host key algorithms that t's known_hosts files already hold for the
// guest are asked for first (as Dial and ssh(1) do), then OpenSSH's default
// order, so a known guest presents the key that is on record.
//
// It returns *UnreachableError when no TCP connection could be made, the
// context's error (wrapped) when ctx ended first, and an error naming the
// address when the guest does not speak SSH.
func FetchHostKey(ctx context.Context, t Target) (ssh.PublicKey, error) {
	return FetchHostKeyVia(ctx, t, DialOptions{})
}

// FetchHostKeyVia is FetchHostKey with the DialOptions used to log in to
// t's jump hosts: the guest's key is fetched through them (or through t's
// ProxyCommand) as Dial would reach the guest. The jump hosts' own keys are
// checked strictly.
func FetchHostKeyVia(ctx context.Context, t Target, o DialOptions) (ssh.PublicKey, error) {
	addr := t.Addr()
	var tcp net.Conn
	switch {
	case len(t.Jumps) > 0:
		last := t.Jumps[len(t.Jumps)-1]
		last.Jumps = t.Jumps[:len(t.Jumps)-1]
		o.KeepAlive = -1
		jc, err := Dial(ctx, last, o)
		if err != nil {
			return nil, fmt.Errorf("jump host %s: %w", last.Alias, err)
		}
		defer jc.Close()
		if tcp, err = viaJump(jc.conn, last.Alias, addr)(ctx); err != nil {
			return nil, err
		}
	case t.ProxyCommand != "":
		var err error
		if tcp, err = startProxy(ctx, t.ProxyCommand, addr); err != nil {
			return nil, err
		}
	default:
		var d net.Dialer
		var err error
		tcp, err = d.DialContext(ctx, cmp.Or(t.Network, "tcp"), addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("connect to guest %s: %w", addr, ctx.Err())
			}
			return nil, &UnreachableError{Addr: addr, Err: err}
		}
	}
	defer tcp.Close()
	stop := context.AfterFunc(ctx, func() { tcp.Close() })
	defer stop()

	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: t.User,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errGotKey
		},
		HostKeyAlgorithms: hostKeyOrder(t, addr),
	}
	sc, _, _, err := ssh.NewClientConn(tcp, addr, cfg)
	if err == nil { // cannot happen: the callback fails the handshake
		sc.Close()
	}
	if key != nil {
		return key, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, ctx.Err())
	}
	return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
}

// hostKeyOrder returns the host key algorithms to ask t for: those its
// known_hosts files hold for addr first, then OpenSSH's order.
func hostKeyOrder(t Target, addr string) []string {
	supported := ssh.SupportedAlgorithms().HostKeys
	base := slices.DeleteFunc(slices.Clone(opensshHostKeyOrder), func(a string) bool { return !slices.Contains(supported, a) })
	hk, err := newHostKeyCheck(t)
	if err != nil || hk.db == nil {
		return base
	}
	known := slices.DeleteFunc(hk.db.HostKeyAlgorithms(addr), func(a string) bool { return !slices.Contains(base, a) })
	return prefer(base, known...)
}

// CheckHostKey checks key, presented by the guest t, against t's known_hosts
// files exactly as Dial does. It returns nil when they vouch for it and
// *HostKeyError when the guest is unknown (Changed false) or known with a
// different key (Changed true); other errors for unreadable files and
// revoked keys.
func CheckHostKey(t Target, key ssh.PublicKey) error {
	hk, err := newHostKeyCheck(t)
	if err != nil {
		return err
	}
	return hk.callback(t.Addr(), &net.TCPAddr{IP: net.ParseIP(t.HostName), Port: t.Port}, key)
}

// KnownHostsName is the name ssh(1) looks the guest t up by in known_hosts:
// its HostName, as "[HostName]:port" when the port is not 22.
func KnownHostsName(t Target) string {
	return xknownhosts.Normalize(t.Addr())
}

// KnownHostsLine returns the known_hosts line (without newline) that vouches
// for key as the host key of the guest t, in the format ssh(1) writes:
// KnownHostsName, hashed ("|1|salt|hash") when hash is set, then the key.
func KnownHostsLine(t Target, key ssh.PublicKey, hash bool) string {
	name := KnownHostsName(t)
	if hash {
		name = xknownhosts.HashHostname(name)
	}
	// Line normalises its names; a hashed name has no port to normalise.
	return xknownhosts.Line([]string{name}, key)
}

// NoKnownHostsError means the guest's ssh_config sets UserKnownHostsFile
// none: there is no file to record its host key in.
type NoKnownHostsError struct{ Alias string }

func (e *NoKnownHostsError) Error() string {
	return fmt.Sprintf("UserKnownHostsFile is none for %s: there is no known_hosts file to add the key to", e.Alias)
}

// KnownHostsFile is the file AddKnownHost writes to for t: its first
// UserKnownHostsFile. It returns *NoKnownHostsError when t has none.
func KnownHostsFile(t Target) (string, error) {
	if len(t.KnownHostsFiles) == 0 {
		return "", &NoKnownHostsError{Alias: t.Alias}
	}
	return t.KnownHostsFiles[0], nil
}

// AddKnownHost records key as the host key of the guest t: it appends
// KnownHostsLine(t, key, hash) to KnownHostsFile(t) (AppendKnownHost), then
// reads the files back the way every later login will (CheckHostKey). The
// caller decides that key is the guest's; AddKnownHost does not fetch it.
//
// It returns *NoKnownHostsError when t has no file, the write's error naming
// the file, and an error when the files do not vouch for key afterwards.
func AddKnownHost(t Target, key ssh.PublicKey, hash bool) error {
	file, err := KnownHostsFile(t)
	if err != nil {
		return err
	}
	// Unhashed, such a name is a pattern (or a list) in known_hosts: "*"
	// would vouch for the key as every host's.
	if strings.ContainsAny(t.HostName, "*?!,[]# \t") || strings.HasPrefix(t.HostName, "@") || strings.HasPrefix(t.HostName, "|") {
		return fmt.Errorf("not adding a key for %q to %s: known_hosts would read that host name as a pattern", t.HostName, file)
	}
	if err := AppendKnownHost(file, KnownHostsLine(t, key, hash)); err != nil {
		return err
	}
	if err := CheckHostKey(t, key); err != nil {
		return fmt.Errorf("added the key to %s, but it does not vouch for %s now: %w", file, t.Addr(), err)
	}
	return nil
}

// AppendKnownHost appends line and a newline to the known_hosts file path,
// creating the file 0600 and its directory 0700 when missing, and starting
// a new line first when the file does not end with one.
//
// Errors name the file.
func AppendKnownHost(path, line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("add to %s: the known_hosts line contains a line break", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("add to known hosts: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("add to known hosts: %w", err)
	}
	prefix, err := needsNewline(f)
	if err == nil {
		_, err = io.WriteString(f, prefix+line+"\n")
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("add to known hosts %s: %w", path, err)
	}
	return nil
}

// needsNewline returns "\n" when f is not empty and does not end in one.
func needsNewline(f *os.File) (string, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return "", err
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if last[0] == '\n' {
		return "", nil
	}
	return "\n", nil
}
