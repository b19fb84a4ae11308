package guest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// noAgent keeps the developer's own agent out of the tests.
var noAgent = DialOptions{NoAgent: true}

type fixture struct {
	srv    *testServer
	target Target
	key    ssh.Signer
}

// newFixture starts an in-process server that accepts a fresh client key
// and returns a Target for it with a known_hosts file vouching the server.
func newFixture(t *testing.T) fixture {
	t.Helper()
	key, priv := newKey(t)
	srv := newTestServer(t, key.PublicKey())
	return fixture{srv: srv, key: key, target: Target{
		Alias:           "guest",
		HostName:        "127.0.0.1",
		Port:            srv.port(),
		User:            "tester",
		IdentityFiles:   []string{writeKey(t, priv)},
		KnownHostsFiles: []string{knownHostsFile(t, srv.addr(), srv.hostKey.PublicKey())},
	}}
}

func dial(t *testing.T, tg Target, o DialOptions) (*Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, tg, o)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestDialKnownHost(t *testing.T) {
	f := newFixture(t)
	c, err := dial(t, f.target, noAgent)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if err := c.Run(context.Background(), "true", nil, nil, nil); err != nil {
		t.Fatalf("Run(true): %v", err)
	}
	if got := f.srv.executed(); len(got) != 1 || got[0] != "true" {
		t.Errorf("server executed %q, want [true]", got)
	}
	if ip := c.LocalIP(); !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("LocalIP = %v, want 127.0.0.1", ip)
	}
	if c.RemoteAddr() != f.srv.addr() {
		t.Errorf("RemoteAddr = %q, want %q", c.RemoteAddr(), f.srv.addr())
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed while connected")
	default:
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	<-c.Done()
}

func TestDialHostKeyRefused(t *testing.T) {
	f := newFixture(t)
	other, _ := newKey(t)
	otherAddr := "127.0.0.1:1" // a different host's entry
	tests := []struct {
		name        string
		knownHosts  func(t *testing.T) string
		wantChanged bool
		wantLine    int
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "known_hosts") }, false, 0},
		{"empty file", func(t *testing.T) string { return knownHostsFile(t, f.srv.addr()) }, false, 0},
		{"other host only", func(t *testing.T) string { return knownHostsFile(t, otherAddr, f.srv.hostKey.PublicKey()) }, false, 0},
		{"changed key", func(t *testing.T) string { return knownHostsFile(t, f.srv.addr(), other.PublicKey()) }, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := f.target
			kh := tt.knownHosts(t)
			tg.KnownHostsFiles = []string{kh}
			before := f.srv.attempts()
			_, err := dial(t, tg, noAgent)
			var he *HostKeyError
			if !errors.As(err, &he) {
				t.Fatalf("Dial error = %v, want *HostKeyError", err)
			}
			want := HostKeyError{
				Alias:       "guest",
				Host:        "127.0.0.1",
				Addr:        f.srv.addr(),
				Fingerprint: ssh.FingerprintSHA256(f.srv.hostKey.PublicKey()),
				KeyType:     ssh.KeyAlgoED25519,
				Changed:     tt.wantChanged,
				KnownHosts:  kh,
				Line:        tt.wantLine,
			}
			if *he != want {
				t.Errorf("HostKeyError = %+v, want %+v", *he, want)
			}
			msg := err.Error()
			for _, s := range []string{want.Fingerprint, kh} {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
			if tt.wantChanged != strings.Contains(msg, "CHANGED") {
				t.Errorf("message %q: says CHANGED = %v, want %v", msg, !tt.wantChanged, tt.wantChanged)
			}
			// The words of advice are the CLI's (cmd/xvmview explain.go);
			// the one that trusted whatever key answered (ssh-keyscan >>
			// known_hosts) must not come back.
			for _, s := range []string{"ssh-keyscan", ">>"} {
				if strings.Contains(msg, s) {
					t.Errorf("message %q advises %q", msg, s)
				}
			}
			if got, want := he.KnownHostsName(), KnownHostsName(tg); got != want {
				t.Errorf("KnownHostsName() = %q, want %q", got, want)
			}
			if n := f.srv.attempts() - before; n != 0 {
				t.Errorf("client tried %d keys on an unverified host", n)
			}
			if got := f.srv.executed(); len(got) != 0 {
				t.Errorf("server executed %q", got)
			}
		})
	}
}

func TestDialUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tg := Target{HostName: "127.0.0.1", Port: port, User: "u", KnownHostsFiles: []string{filepath.Join(t.TempDir(), "kh")}}
	_, err = dial(t, tg, noAgent)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("Dial error = %v, want *UnreachableError", err)
	}
	if ue.Addr != tg.Addr() || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("UnreachableError = %+v, want Addr %s and ECONNREFUSED", ue, tg.Addr())
	}
	if want := "cannot reach guest at " + tg.Addr() + ": connection refused"; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
}

func TestDialAuthFailure(t *testing.T) {
	f := newFixture(t)
	_, strangerPriv := newKey(t)
	stranger := writeKey(t, strangerPriv)
	_, encrypted := encryptedKey(t)
	tests := []struct {
		name          string
		ids           []string
		wantTried     []string
		wantEncrypted []string
		wantMsg       string
	}{
		{"wrong key", []string{stranger}, []string{stranger}, nil, "refused login as tester with " + stranger},
		{"no keys", []string{filepath.Join(t.TempDir(), "missing")}, nil, nil, "no keys to offer"},
		{"encrypted key without agent", []string{encrypted}, nil, []string{encrypted}, encrypted + " is passphrase-protected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := f.target
			tg.IdentityFiles = tt.ids
			_, err := dial(t, tg, noAgent)
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("Dial error = %v, want *AuthError", err)
			}
			if ae.User != "tester" || ae.Addr != tg.Addr() ||
				!equal(ae.Tried, tt.wantTried) || !equal(ae.Encrypted, tt.wantEncrypted) {
				t.Errorf("AuthError = %+v, want Tried %q Encrypted %q", ae, tt.wantTried, tt.wantEncrypted)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("message %q lacks %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// TestDialAgent logs in with a key held only by an agent; an encrypted copy
// of that key on disk is then not reported.
func TestDialAgent(t *testing.T) {
	f := newFixture(t)
	priv, encrypted := encryptedKey(t)
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, key.PublicKey())
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, func(c net.Conn) { agent.ServeAgent(keyring, c); c.Close() })

	tg := f.target
	tg.Port = srv.port()
	tg.KnownHostsFiles = []string{knownHostsFile(t, srv.addr(), srv.hostKey.PublicKey())}
	tg.IdentityFiles = []string{encrypted}
	c, err := dial(t, tg, DialOptions{AgentSocket: sock})
	if err != nil {
		t.Fatalf("Dial with agent: %v", err)
	}
	c.Close()

	// IdentitiesOnly: the agent's key is offered because it is the
	// identity file's; the same agent with another identity file, not.
	only := tg
	only.IdentitiesOnly = true
	c, err = dial(t, only, DialOptions{AgentSocket: sock})
	if err != nil {
		t.Fatalf("Dial with IdentitiesOnly and the identity's key in the agent: %v", err)
	}
	c.Close()
	only.IdentityFiles = []string{f.target.IdentityFiles[0]}
	if _, err := dial(t, only, DialOptions{AgentSocket: sock}); !errors.As(err, new(*AuthError)) {
		t.Fatalf("Dial with IdentitiesOnly and another identity = %v, want *AuthError: the agent's key is not offered", err)
	}
	only.IdentitiesOnly = false
	c, err = dial(t, only, DialOptions{AgentSocket: sock})
	if err != nil {
		t.Fatalf("Dial without IdentitiesOnly offers the agent's key: %v", err)
	}
	c.Close()

	// Without the agent the same target fails and names the encrypted key.
	_, err = dial(t, tg, noAgent)
	var ae *AuthError
	if !errors.As(err, &ae) || len(ae.Encrypted) != 1 {
		t.Fatalf("Dial without agent = %v, want *AuthError naming the encrypted key", err)
	}
}

// TestDialContext: a peer that accepts TCP but never speaks SSH must not
// hold Dial beyond its context.
func TestDialContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	tg := Target{HostName: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, User: "u",
		KnownHostsFiles: []string{filepath.Join(t.TempDir(), "kh")}}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, tg, noAgent)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
	}
}

func TestRunInProcess(t *testing.T) {
	f := newFixture(t)
	c, err := dial(t, f.target, noAgent)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Run("stdin to stdout", func(t *testing.T) {
		in := bytes.Repeat([]byte("xvm\x00\xff\n"), 10000)
		var out bytes.Buffer
		if err := c.Run(ctx, "cat", bytes.NewReader(in), &out, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Errorf("got %d bytes back, want the %d sent", out.Len(), len(in))
		}
	})
	t.Run("exit status", func(t *testing.T) {
		err := c.Run(ctx, "exit 3", nil, nil, nil)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Status != 3 {
			t.Fatalf("Run(exit 3) = %v, want *ExitError{Status: 3}", err)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := c.Run(ctx, "hang", nil, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run(hang) = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("stderr", func(t *testing.T) {
		var stderr bytes.Buffer
		if err := c.Run(ctx, "echo-stderr oops", nil, nil, &stderr); err != nil {
			t.Fatal(err)
		}
		if stderr.String() != "oops" {
			t.Errorf("stderr = %q, want oops", stderr.String())
		}
	})
}

// freezer forwards TCP to target until frozen, then silently drops
// everything in both directions without closing: a dead network path.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen bool
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fz := &freezer{ln: ln}
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
	})
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, a, b)
			cmu.Unlock()
			go fz.pipe(a, b)
			go fz.pipe(b, a)
		}
	}()
	return fz
}

func (fz *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		fz.mu.Lock()
		frozen := fz.frozen
		fz.mu.Unlock()
		if !frozen {
			dst.Write(buf[:n])
		}
	}
}

func (fz *freezer) freeze() {
	fz.mu.Lock()
	fz.frozen = true
	fz.mu.Unlock()
}

// TestKeepAlive: when the path goes dead without a FIN or RST, unanswered
// keepalives end the connection and Done fires.
func TestKeepAlive(t *testing.T) {
	f := newFixture(t)
	fz := newFreezer(t, f.srv.addr())
	tg := f.target
	tg.Port = fz.ln.Addr().(*net.TCPAddr).Port
	tg.KnownHostsFiles = []string{knownHostsFile(t, tg.Addr(), f.srv.hostKey.PublicKey())}
	c, err := dial(t, tg, DialOptions{NoAgent: true, KeepAlive: 100 * time.Millisecond, KeepAliveMisses: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background(), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	fz.freeze()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10 s after the path went dead")
	}
}

func TestMain(m *testing.M) {
	// The tests must not depend on the developer's ~/.ssh or agent.
	os.Unsetenv("SSH_AUTH_SOCK")
	os.Exit(m.Run())
}
