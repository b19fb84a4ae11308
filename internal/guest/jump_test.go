package guest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// TestRealJumps reaches a real test guest the ways ssh_config can say:
// through a second test guest as jump host (ProxyJump, an Include'd Host),
// through a ProxyCommand (`ssh -W` via that jump host, and `nc`), and by a
// Match block. Connections through the jump host arrive at the guest's sshd
// from the jump host's address on the link between them.
func TestRealJumps(t *testing.T) {
	requireOpenSSH(t)
	g := testguest.Start(t, testguest.Options{})
	j := testguest.Start(t, testguest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jumpAddr, err := j.Link(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	incDir := filepath.Join(dir, "config.d")
	must(t, os.Mkdir(incDir, 0o700))
	empty := filepath.Join(dir, "empty_known_hosts")
	must(t, os.WriteFile(empty, nil, 0o600))
	must(t, os.WriteFile(filepath.Join(incDir, "jump.conf"),
		[]byte(j.HostStanza("jump", j.KnownHosts)+j.HostStanza("unknownjump", empty)), 0o600))
	cfgFile := filepath.Join(dir, "config")
	guestStanza := func(host string) string {
		return strings.Replace(g.HostStanza(host, g.KnownHosts), "Host "+host+"\n", host+"\n", 1)
	}
	conf := "Include " + incDir + "/*.conf\n" +
		"Host viajump\n" + strings.SplitN(guestStanza(""), "\n", 2)[1] + "\tProxyJump jump\n" +
		"Host viassh\n" + strings.SplitN(guestStanza(""), "\n", 2)[1] + "\tProxyCommand ssh -F " + cfgFile + " -W %h:%p jump\n" +
		"Host vianc\n" + strings.SplitN(guestStanza(""), "\n", 2)[1] + "\tProxyCommand nc %h %p\n" +
		"Host viaunknown\n" + strings.SplitN(guestStanza(""), "\n", 2)[1] + "\tProxyJump unknownjump\n" +
		"Match host matched\n" + strings.SplitN(guestStanza(""), "\n", 2)[1]
	must(t, os.WriteFile(cfgFile, []byte(conf), 0o600))
	cfg := Config{SSHConfigFile: cfgFile, Home: dir}

	for _, tt := range []struct {
		host, from string
		jumps      int
	}{
		{"viajump", jumpAddr, 1},
		{"viassh", jumpAddr, 0},
		{"vianc", g.HostAddr, 0},
		{"matched", g.HostAddr, 0},
	} {
		t.Run(tt.host, func(t *testing.T) {
			tg, err := Resolve(tt.host, Overrides{}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(tg.Jumps) != tt.jumps || tg.HostName != g.Addr {
				t.Fatalf("Resolve(%s) = %+v, want %s with %d jump hosts", tt.host, tg, g.Addr, tt.jumps)
			}
			c := dialReal(t, tg)
			defer c.Close()
			var out strings.Builder
			if err := c.Run(ctx, `printf %s "${SSH_CLIENT%% *}"`, nil, &out, nil); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.from {
				t.Errorf("the guest saw the connection come from %q, want %q", out.String(), tt.from)
			}
			if tt.from != g.HostAddr && c.LocalIP() != nil {
				t.Errorf("LocalIP = %v through a jump host, want nil", c.LocalIP())
			}
		})
	}

	t.Run("jump host key unknown", func(t *testing.T) {
		tg, err := Resolve("viaunknown", Overrides{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dial(t, tg, noAgent)
		var he *HostKeyError
		if !errors.As(err, &he) || !he.Jump || he.Changed || !strings.Contains(err.Error(), "jump host unknownjump") ||
			!strings.Contains(err.Error(), j.HostKeyFingerprint) {
			t.Fatalf("Dial through a jump host with an unknown key = %v, want *HostKeyError naming jump host unknownjump and %s", err, j.HostKeyFingerprint)
		}
	})

	t.Run("ProxyCommand fails", func(t *testing.T) {
		tg, err := Resolve("vianc", Overrides{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		tg.ProxyCommand = "echo no route to nowhere >&2; exit 3"
		_, err = dial(t, tg, noAgent)
		var pe *ProxyCommandError
		if !errors.As(err, &pe) || pe.Stderr != "no route to nowhere" || !strings.Contains(err.Error(), "no route to nowhere") {
			t.Fatalf("Dial with a failing ProxyCommand = %v, want *ProxyCommandError with its stderr", err)
		}
	})
}

// requireOpenSSH skips without ssh and nc, or fails under CI=true.
func requireOpenSSH(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ssh", "nc"} {
		if _, err := exec.LookPath(tool); err != nil {
			testguest.Missing(t, "program "+tool, "run scripts/install-deps.sh")
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConnectTimeout: a ProxyCommand that never speaks SSH (as a black hole
// would) ends the dial after ConnectTimeout with an error saying so, long
// before the caller's deadline.
func TestConnectTimeout(t *testing.T) {
	tg := Target{Alias: "silent", HostName: "192.0.2.1", Port: 22, User: "u", KnownHostsFiles: []string{filepath.Join(t.TempDir(), "kh")},
		ProxyCommand: "exec sleep 60", ConnectTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := Dial(ctx, tg, noAgent)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ConnectTimeout 300ms") || ctx.Err() != nil {
		t.Fatalf("Dial = %v, want *UnreachableError naming ConnectTimeout before the caller's deadline", err)
	}
}

// TestRealCertificate logs in with a key the guest does not list, through
// a certificate (CertificateFile) that a CA it trusts signed; IdentitiesOnly
// keeps the agent out.
func TestRealCertificate(t *testing.T) {
	keygen := testguest.NeedProgram(t, "ssh-keygen", "openssh-client")
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))
	ca, key := filepath.Join(dir, "ca"), filepath.Join(dir, "id_user")
	for _, k := range []string{ca, key} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	g := testguest.Start(t, testguest.Options{SSHDConfig: []string{"TrustedUserCAKeys " + ca + ".pub"}})
	if out, err := exec.Command(keygen, "-q", "-s", ca, "-I", "xvmview-test", "-n", g.User, "-V", "-5m:+1h", key+".pub").CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -s: %v: %s", err, out)
	}
	tg, err := Resolve(g.Alias, Overrides{}, Config{SSHConfigFile: g.SSHConfig, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	// The signed key lies elsewhere: only CertificateFile pairs the two.
	cert := filepath.Join(dir, "user.cert")
	must(t, os.Rename(key+"-cert.pub", cert))
	tg.IdentityFiles = []string{key}
	t.Run("without the certificate", func(t *testing.T) {
		var ae *AuthError
		if _, err := dial(t, tg, noAgent); !errors.As(err, &ae) {
			t.Fatalf("Dial = %v, want *AuthError: the key alone is not authorized", err)
		}
	})
	t.Run("CertificateFile", func(t *testing.T) {
		ct := tg
		ct.CertificateFiles = []string{cert}
		c, err := dial(t, ct, noAgent)
		if err != nil {
			t.Fatal(err)
		}
		must(t, c.Run(context.Background(), "true", nil, nil, nil))
	})
	t.Run("KEY-cert.pub next to the key", func(t *testing.T) {
		must(t, os.Link(cert, key+"-cert.pub"))
		c, err := dial(t, tg, noAgent)
		if err != nil {
			t.Fatal(err)
		}
		must(t, c.Run(context.Background(), "true", nil, nil, nil))
	})
}
