package guest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func fetch(t *testing.T, tg Target) (ssh.PublicKey, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return FetchHostKey(ctx, tg)
}

// TestFetchHostKey: the key arrives, and the guest sees no login attempt and
// no command, whether or not known_hosts knows it.
func TestFetchHostKey(t *testing.T) {
	f := newFixture(t)
	for _, known := range []bool{true, false} {
		t.Run("known="+strconv.FormatBool(known), func(t *testing.T) {
			tg := f.target
			if !known {
				tg.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "missing")}
			}
			key, err := fetch(t, tg)
			if err != nil {
				t.Fatal(err)
			}
			if string(key.Marshal()) != string(f.srv.hostKey.PublicKey().Marshal()) {
				t.Errorf("got key %s, want the server's %s", ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(f.srv.hostKey.PublicKey()))
			}
		})
	}
	if n := f.srv.attempts(); n != 0 {
		t.Errorf("FetchHostKey made %d login attempts", n)
	}
	if got := f.srv.executed(); len(got) != 0 {
		t.Errorf("server executed %q", got)
	}
}

func TestFetchHostKeyErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	go func() { // a server that is not sshd: says something else and hangs up
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })

	t.Run("closed port", func(t *testing.T) {
		_, err := fetch(t, Target{HostName: "127.0.0.1", Port: 1, User: "u"})
		var ue *UnreachableError
		if !errors.As(err, &ue) || ue.Addr != "127.0.0.1:1" {
			t.Errorf("error = %v, want *UnreachableError for 127.0.0.1:1", err)
		}
	})
	t.Run("not ssh", func(t *testing.T) {
		_, err := fetch(t, Target{HostName: "127.0.0.1", Port: port, User: "u"})
		var ue *UnreachableError
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Errorf("error = %v, want a handshake error naming %s", err, ln.Addr())
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := FetchHostKey(ctx, Target{HostName: "127.0.0.1", Port: port, User: "u"})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	})
}

// twoKeyServer is an SSH server with an ed25519 and an ECDSA host key; it
// serves handshakes only.
func twoKeyServer(t *testing.T) (addr string, ed, ec ssh.PublicKey) {
	t.Helper()
	edKey, _ := newKey(t)
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ssh.NewSignerFromKey(ecPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(ecKey) // added first: the client's preference must decide
	cfg.AddHostKey(edKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if sc, _, _, err := ssh.NewServerConn(c, cfg); err == nil {
					sc.Close()
				}
			}()
		}
	}()
	return ln.Addr().String(), edKey.PublicKey(), ecKey.PublicKey()
}

// TestFetchHostKeyOrder: an unknown guest shows its ed25519 key, as ssh(1)
// would; a guest known by its ECDSA key shows that one.
func TestFetchHostKeyOrder(t *testing.T) {
	addr, ed, ec := twoKeyServer(t)
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	tests := []struct {
		name  string
		known []ssh.PublicKey
		want  ssh.PublicKey
	}{
		{"unknown", nil, ed},
		{"known by ecdsa", []ssh.PublicKey{ec}, ec},
		{"known by ed25519", []ssh.PublicKey{ed}, ed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := Target{HostName: "127.0.0.1", Port: port, User: "u", KnownHostsFiles: []string{knownHostsFile(t, addr, tt.known...)}}
			key, err := fetch(t, tg)
			if err != nil {
				t.Fatal(err)
			}
			if key.Type() != tt.want.Type() {
				t.Errorf("got a %s key, want %s", key.Type(), tt.want.Type())
			}
			if err := CheckHostKey(tg, key); (err == nil) != (tt.known != nil) {
				t.Errorf("CheckHostKey = %v, want nil only when known", err)
			}
		})
	}
}

func TestCheckHostKey(t *testing.T) {
	f := newFixture(t)
	key := f.srv.hostKey.PublicKey()
	other, _ := newKey(t)
	tests := []struct {
		name        string
		knownHosts  func(t *testing.T) string
		wantErr     bool
		wantChanged bool
		wantLine    int
	}{
		{"known", func(t *testing.T) string { return knownHostsFile(t, f.srv.addr(), key) }, false, false, 0},
		{"only another host known", func(t *testing.T) string { return knownHostsFile(t, "127.0.0.1:1", key) }, true, false, 0},
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "known_hosts") }, true, false, 0},
		{"changed", func(t *testing.T) string { return knownHostsFile(t, f.srv.addr(), other.PublicKey()) }, true, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := f.target
			tg.KnownHostsFiles = []string{tt.knownHosts(t)}
			err := CheckHostKey(tg, key)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("CheckHostKey = %v, want nil", err)
				}
				return
			}
			var he *HostKeyError
			if !errors.As(err, &he) {
				t.Fatalf("CheckHostKey = %v, want *HostKeyError", err)
			}
			if he.Changed != tt.wantChanged || he.Line != tt.wantLine || he.Fingerprint != ssh.FingerprintSHA256(key) {
				t.Errorf("HostKeyError = %+v, want Changed %v, Line %d, the key's fingerprint", *he, tt.wantChanged, tt.wantLine)
			}
		})
	}
}

func TestKnownHostsLine(t *testing.T) {
	key, _ := newKey(t)
	pub := key.PublicKey()
	keyText := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	tests := []struct {
		name     string
		target   Target
		wantName string
	}{
		{"port 22", Target{HostName: "guest.example", Port: 22}, "guest.example"},
		{"other port", Target{HostName: "10.0.0.2", Port: 2222}, "[10.0.0.2]:2222"},
		{"IPv6 port 22", Target{HostName: "fd00::2", Port: 22}, "fd00::2"},
		{"IPv6 other port", Target{HostName: "fd00::2", Port: 2022}, "[fd00::2]:2022"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KnownHostsName(tt.target); got != tt.wantName {
				t.Errorf("KnownHostsName = %q, want %q", got, tt.wantName)
			}
			if got, want := KnownHostsLine(tt.target, pub, false), tt.wantName+" "+keyText; got != want {
				t.Errorf("plain line = %q, want %q", got, want)
			}
			hashed := KnownHostsLine(tt.target, pub, true)
			if !strings.HasPrefix(hashed, "|1|") || strings.Contains(hashed, tt.target.HostName) || !strings.HasSuffix(hashed, " "+keyText) {
				t.Errorf("hashed line = %q, want |1|salt|hash and the key, without the host name", hashed)
			}
			// x/crypto's own reader finds both lines for the address.
			for _, line := range []string{KnownHostsLine(tt.target, pub, false), hashed} {
				path := filepath.Join(t.TempDir(), "known_hosts")
				if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cb, err := knownhosts.New(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := cb(tt.target.Addr(), &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: tt.target.Port}, pub); err != nil {
					t.Errorf("knownhosts rejects %q for %s: %v", line, tt.target.Addr(), err)
				}
			}
		})
	}
}

func TestAppendKnownHost(t *testing.T) {
	f := newFixture(t)
	key := f.srv.hostKey.PublicKey()
	tests := []struct {
		name     string
		existing *string // nil: no file, no directory
		hash     bool
	}{
		{name: "new file and directory"},
		{name: "new file hashed", hash: true},
		{name: "after a line without newline", existing: ptr("other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKvP3Q/Kj2pZXH2vvUbCL+ZhGu0c1vJjPq5D4bmsm0SO")},
		{name: "after complete lines", existing: ptr("# comment\n"), hash: true},
		{name: "empty file", existing: ptr("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dot-ssh")
			path := filepath.Join(dir, "known_hosts")
			if tt.existing != nil {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(*tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tg := f.target
			tg.KnownHostsFiles = []string{path}
			line := KnownHostsLine(tg, key, tt.hash)
			if err := AppendKnownHost(path, line); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			prefix := ""
			if tt.existing != nil {
				prefix = *tt.existing
				if prefix != "" && !strings.HasSuffix(prefix, "\n") {
					prefix += "\n"
				}
			}
			if got, want := string(b), prefix+line+"\n"; got != want {
				t.Errorf("file holds %q, want %q", got, want)
			}
			if tt.existing == nil {
				for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
					if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
						t.Errorf("%s: mode %v (err %v), want %04o", p, fi.Mode().Perm(), err, want)
					}
				}
			}
			// Dial now trusts the guest.
			c, err := dial(t, tg, noAgent)
			if err != nil {
				t.Fatalf("Dial after adding the key: %v", err)
			}
			c.Close()
		})
	}
	t.Run("line break refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "known_hosts")
		if err := AppendKnownHost(path, "a\nb"); err == nil {
			t.Error("AppendKnownHost accepted a line break")
		}
		if _, err := os.Stat(path); err == nil {
			t.Error("file written anyway")
		}
	})
}

// TestAddKnownHost: the writer adds to the first UserKnownHostsFile, which
// then vouches for the key, and refuses a guest with no file.
func TestAddKnownHost(t *testing.T) {
	f := newFixture(t)
	key := f.srv.hostKey.PublicKey()
	dir := t.TempDir()
	tg := f.target
	tg.KnownHostsFiles = []string{filepath.Join(dir, "first"), filepath.Join(dir, "second")}
	if err := CheckHostKey(tg, key); err == nil {
		t.Fatal("an empty known_hosts vouches for the key")
	}
	if err := AddKnownHost(tg, key, true); err != nil {
		t.Fatal(err)
	}
	if err := CheckHostKey(tg, key); err != nil {
		t.Errorf("after AddKnownHost: %v", err)
	}
	if _, err := os.Stat(tg.KnownHostsFiles[1]); err == nil {
		t.Error("AddKnownHost wrote to the second file")
	}
	b, _ := os.ReadFile(tg.KnownHostsFiles[0])
	if !strings.HasPrefix(string(b), "|1|") {
		t.Errorf("hash true wrote %q, want a hashed name", b)
	}

	// A host name that known_hosts reads as a pattern or a list is never
	// recorded: "*" would vouch for the key as every host's.
	for _, name := range []string{"*", "a?", "!x", "a,b", "@revoked", "|1|x"} {
		pt := tg
		pt.HostName = name
		pt.KnownHostsFiles = []string{filepath.Join(dir, "patterns")}
		if err := AddKnownHost(pt, key, false); err == nil {
			b, _ := os.ReadFile(pt.KnownHostsFiles[0])
			t.Errorf("AddKnownHost for host name %q wrote %q, want an error", name, b)
		}
	}

	tg.KnownHostsFiles = nil
	var nk *NoKnownHostsError
	if err := AddKnownHost(tg, key, false); !errors.As(err, &nk) || nk.Alias != tg.Alias {
		t.Errorf("no files: err = %v, want *NoKnownHostsError for %q", err, tg.Alias)
	}
}

func ptr[T any](v T) *T { return &v }

// TestKnownHostsLineOpenSSH: OpenSSH's ssh, with StrictHostKeyChecking yes,
// accepts the lines we write (plain and hashed, for a port other than 22:
// the "[host]:port" form) and refuses without them.
func TestKnownHostsLineOpenSSH(t *testing.T) {
	sshPath := testguest.NeedProgram(t, "ssh", "openssh-client")
	f := newFixture(t)
	key := f.srv.hostKey.PublicKey()
	tests := []struct {
		name   string
		add    bool
		hash   bool
		wantOK bool
	}{
		{"plain", true, false, true},
		{"hashed", true, true, true},
		{"not added", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			kh := filepath.Join(home, "known_hosts")
			if err := os.WriteFile(kh, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.add {
				if err := AppendKnownHost(kh, KnownHostsLine(f.target, key, tt.hash)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, sshPath, "-F", "/dev/null",
				"-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null",
				"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "CheckHostIP=no",
				"-o", "IdentitiesOnly=yes", "-i", f.target.IdentityFiles[0],
				"-p", strconv.Itoa(f.target.Port), "-l", f.target.User, f.target.HostName, "true")
			cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
			out, err := cmd.CombinedOutput()
			if tt.wantOK && err != nil {
				t.Fatalf("ssh refused the line we wrote: %v\n%s\nknown_hosts: %s", err, out, KnownHostsLine(f.target, key, tt.hash))
			}
			if !tt.wantOK && (err == nil || !strings.Contains(string(out), "Host key verification failed")) {
				t.Fatalf("ssh without the line: %v\n%s", err, out)
			}
		})
	}
}
