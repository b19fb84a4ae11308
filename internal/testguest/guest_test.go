package testguest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshCmd runs OpenSSH's client against g through its generated config only.
func sshCmd(ctx context.Context, g *Guest, args ...string) *exec.Cmd {
	argv := append([]string{"-F", g.SSHConfig, "-o", "BatchMode=yes"}, args...)
	return exec.CommandContext(ctx, "ssh", argv...)
}

func requireSSHClient(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		SkipOrFail(t, &PrereqError{What: "program ssh", Hint: "install the openssh-client package"})
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGuest(t *testing.T) {
	requireSSHClient(t)
	g := Start(t, Options{})
	ctx := testCtx(t)

	t.Run("fields", func(t *testing.T) {
		n := strings.TrimPrefix(g.Namespace, "xvt-")
		want := map[string]string{
			"HostAddr": "10.213." + n + ".1", "Addr": "10.213." + n + ".2", "User": "xvt" + n,
		}
		got := map[string]string{"HostAddr": g.HostAddr, "Addr": g.Addr, "User": g.User}
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s = %q, want %q", k, got[k], want[k])
			}
		}
		if fi, err := os.Stat(filepath.Join(netnsDir, g.Namespace)); err != nil || fi == nil {
			t.Errorf("namespace %s not pinned: %v", g.Namespace, err)
		}
	})

	t.Run("file modes", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			mode os.FileMode
		}{
			{g.Dir, os.ModeDir | 0o700},
			{g.IdentityFile, 0o600},
			{g.KnownHosts, 0o600},
			{g.SSHConfig, 0o600},
		} {
			fi, err := os.Stat(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tc.mode {
				t.Errorf("%s: mode %v, want %v", tc.path, fi.Mode(), tc.mode)
			}
			if filepath.Dir(tc.path) != g.Dir && tc.path != g.Dir {
				t.Errorf("%s is not in Dir %s", tc.path, g.Dir)
			}
		}
	})

	t.Run("known_hosts has only the host key", func(t *testing.T) {
		b, err := os.ReadFile(g.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		var keys int
		for len(bytes.TrimSpace(b)) > 0 {
			_, hosts, key, _, rest, err := ssh.ParseKnownHosts(b)
			if err != nil {
				t.Fatalf("parse %s: %v", g.KnownHosts, err)
			}
			keys++
			if fp := ssh.FingerprintSHA256(key); fp != g.HostKeyFingerprint {
				t.Errorf("key %s, want %s", fp, g.HostKeyFingerprint)
			}
			if !slices.Contains(hosts, g.Addr) || !slices.Contains(hosts, g.Alias) {
				t.Errorf("hosts %v lack %s or %s", hosts, g.Addr, g.Alias)
			}
			b = rest
		}
		if keys != 1 {
			t.Errorf("%d keys in known_hosts, want 1", keys)
		}
	})

	t.Run("ssh", func(t *testing.T) {
		for _, tc := range []struct {
			name, remote, want string
		}{
			{"true", "true", ""},
			{"user name", "id -un", g.User},
			{"uid", "id -u", strconv.Itoa(g.UID)},
			{"gid", "id -g", strconv.Itoa(g.GID)},
			{"home", `printf %s "$HOME"`, g.Home},
			{"address", "echo $SSH_CONNECTION | cut -d' ' -f3", g.Addr},
			{"twmrc", "grep -c -e RandomPlacement -e NoGrabServer .twmrc", "2"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var stderr bytes.Buffer
				cmd := sshCmd(ctx, g, g.Alias, tc.remote)
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("ssh %s %q: %v: %s", g.Alias, tc.remote, err, stderr.String())
				}
				if got := strings.TrimSpace(string(out)); got != tc.want {
					t.Errorf("ssh %q = %q, want %q", tc.remote, got, tc.want)
				}
			})
		}
	})

	t.Run("changed host key refused", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "known_hosts")
		if err := g.WrongKnownHosts(wrong); err != nil {
			t.Fatal(err)
		}
		out, err := sshCmd(ctx, g, "-o", "UserKnownHostsFile="+wrong, g.Alias, "true").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 255 {
			t.Fatalf("ssh with wrong known_hosts: err %v, want exit status 255; output: %s", err, out)
		}
		if !strings.Contains(string(out), "REMOTE HOST IDENTIFICATION HAS CHANGED") {
			t.Errorf("ssh with wrong known_hosts did not report a changed key: %s", out)
		}
	})

	t.Run("Command runs in the namespace as the user", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			argv []string
			want string // substring of stdout
		}{
			{"address", []string{"ip", "-4", "-o", "addr", "show"}, " " + g.Addr + "/30 "},
			{"uid", []string{"id", "-u"}, strconv.Itoa(g.UID) + "\n"},
			{"euid", []string{"sh", "-c", "grep ^Uid: /proc/self/status"}, fmt.Sprintf("\t%d\t%d\t", g.UID, g.UID)},
			{"home", []string{"sh", "-c", `printf '%s|%s' "$HOME" "$PWD"`}, g.Home + "|" + g.Home},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, err := g.Command(ctx, tc.argv...).CombinedOutput()
				if err != nil {
					t.Fatalf("%v: %v: %s", tc.argv, err, out)
				}
				if !strings.Contains(string(out), tc.want) {
					t.Errorf("%v printed %q, want it to contain %q", tc.argv, out, tc.want)
				}
			})
		}
		out, err := g.Command(ctx, "ip", "-4", "-o", "addr", "show").Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), g.HostAddr+"/") {
			t.Errorf("namespace has the host address %s: %s", g.HostAddr, out)
		}
	})

	t.Run("ReadHomeFile", func(t *testing.T) {
		b, err := g.ReadHomeFile(".twmrc")
		if err != nil || !bytes.Contains(b, []byte("RandomPlacement")) {
			t.Errorf("ReadHomeFile(.twmrc) = %q, %v", b, err)
		}
		if _, err := g.ReadHomeFile(".no-such-file"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ReadHomeFile(missing) error = %v, want os.ErrNotExist", err)
		}
		for _, bad := range []string{"../../etc/shadow", "/etc/shadow", ""} {
			if _, err := g.ReadHomeFile(bad); err == nil {
				t.Errorf("ReadHomeFile(%q) succeeded", bad)
			}
		}
		link := filepath.Join(g.Home, "escape")
		if err := os.Symlink("/etc/shadow", link); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = os.Remove(link) }()
		if _, err := g.ReadHomeFile("escape"); err == nil {
			t.Errorf("ReadHomeFile followed a symlink out of the home directory")
		}
	})

	t.Run("ssh -X reaches the host display", func(t *testing.T) {
		x := StartXvfb(t, XvfbOptions{Screen: "1000x700x24"})
		cmd := sshCmd(ctx, g, "-X", g.Alias, `echo "$DISPLAY"; xdpyinfo | grep dimensions:`)
		cmd.Env = append(os.Environ(), x.Env()...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ssh -X: %v: %s", err, stderr.String())
		}
		if !strings.HasPrefix(string(out), "localhost:") || !strings.Contains(string(out), "1000x700 pixels") {
			t.Errorf("ssh -X did not forward to %s: %s", x.Display, out)
		}
	})

	t.Run("ClientConfig", func(t *testing.T) {
		cfg, err := g.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		c, err := ssh.Dial("tcp", g.SSHAddr(), cfg)
		if err != nil {
			t.Fatalf("dial %s: %v", g.SSHAddr(), err)
		}
		defer func() { _ = c.Close() }()
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.Output("id -un")
		if err != nil || strings.TrimSpace(string(out)) != g.User {
			t.Errorf("id -un over x/crypto/ssh = %q, %v; want %q", out, err, g.User)
		}
	})

	t.Run("KillSessions drops a running session", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := sshCmd(sctx, g, g.Alias, "exec sleep 100")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waitFor(t, sctx, "sleep 100 on the guest", func() bool { return findProc(t, g, "sleep", "100") > 0 })
		if err := g.KillSessions(); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if sctx.Err() != nil {
			t.Fatalf("ssh session survived KillSessions (killed by the test's deadline): %s", stderr.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 255 {
			t.Errorf("ssh after KillSessions: %v, want exit status 255", err)
		}
		if !alive(g.SSHDPID) {
			t.Fatalf("KillSessions killed the listener")
		}
		// The listener still accepts new connections.
		if out, err := sshCmd(ctx, g, g.Alias, "true").CombinedOutput(); err != nil {
			t.Errorf("ssh after KillSessions: %v: %s", err, out)
		}
	})
}

// findProc returns the PID of a guest process with exactly argv, or 0.
func findProc(t *testing.T, g *Guest, argv ...string) int {
	t.Helper()
	procs, err := g.Processes()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if slices.Equal(p.Cmdline, argv) {
			return p.PID
		}
	}
	return 0
}

// waitFor polls cond until it holds or ctx ends, which fails the test.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

// TestClose leaves a session, an orphan and a Command process running and
// checks that Close removes them and every other trace, twice.
func TestClose(t *testing.T) {
	requireSSHClient(t)
	ctx := testCtx(t)
	g, err := New(ctx, Options{})
	if err != nil {
		SkipOrFail(t, err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = g.Close()
		}
	})

	session := sshCmd(ctx, g, g.Alias, "sleep 101 & exec sleep 102")
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	sessionDone := make(chan error, 1)
	go func() { sessionDone <- session.Wait() }()
	inNS := g.Command(ctx, "sleep", "103")
	if err := inNS.Start(); err != nil {
		t.Fatal(err)
	}
	inNSDone := make(chan error, 1)
	go func() { inNSDone <- inNS.Wait() }()
	waitFor(t, ctx, "guest processes", func() bool {
		return findProc(t, g, "sleep", "101") > 0 && findProc(t, g, "sleep", "102") > 0 && findProc(t, g, "sleep", "103") > 0
	})

	closed = true
	if err := g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	<-sessionDone
	<-inNSDone
	if ctx.Err() != nil {
		t.Fatalf("processes outlived Close until the test deadline")
	}
	assertGone(t, g)
}

// assertGone checks that nothing of g is left.
func assertGone(t *testing.T, g *Guest) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(netnsDir, g.Namespace)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s left behind (%v)", g.Namespace, err)
	}
	if out, err := exec.Command(g.s.ip, "netns", "list").Output(); err != nil || bytes.Contains(out, []byte(g.Namespace+" ")) || bytes.Contains(out, []byte(g.Namespace+"\n")) {
		t.Errorf("ip netns list still shows %s (%v): %s", g.Namespace, err, out)
	}
	if g.s.hostLink != "" {
		if _, err := net.InterfaceByName(g.s.hostLink); err == nil {
			t.Errorf("veth %s left behind", g.s.hostLink)
		}
	}
	if g.User != "" {
		if _, err := user.Lookup(g.User); err == nil {
			t.Errorf("user %s left behind", g.User)
		}
		if _, err := user.LookupGroup(g.User); err == nil {
			t.Errorf("group %s left behind", g.User)
		}
	}
	for _, dir := range []string{g.Home, g.Dir} {
		if dir == "" {
			continue
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", dir, err)
		}
	}
	if g.SSHDPID > 0 && alive(g.SSHDPID) {
		t.Errorf("sshd pid %d still running", g.SSHDPID)
	}
	if g.UID > 0 {
		procs, err := scanProcs()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			if !p.zombie && (p.ruid == g.UID || p.euid == g.UID) {
				t.Errorf("process %d %q of uid %d left behind", p.pid, readCmdline(p.pid), g.UID)
			}
		}
	}
}

// TestNewFailureCleansUp makes sshd refuse its config, so New fails after
// the namespace, veth, user and Dir exist, and checks they are gone.
func TestNewFailureCleansUp(t *testing.T) {
	ctx := testCtx(t)
	g, err := create(ctx, Options{SSHDConfig: []string{"NoSuchKeyword yes"}})
	if err == nil {
		_ = g.Close()
		t.Fatal("New with a bad sshd_config line succeeded")
	}
	var pe *PrereqError
	if errors.As(err, &pe) {
		SkipOrFail(t, err)
	}
	if !strings.Contains(err.Error(), "NoSuchKeyword") {
		t.Errorf("error does not quote sshd's complaint: %v", err)
	}
	if g.Namespace == "" || g.User == "" || g.Dir == "" || g.SSHDPID == 0 {
		t.Fatalf("New failed before it got to sshd: %v", err)
	}
	assertGone(t, g)
}

// TestTwoGuests starts two guests at once, one forbidding TCP forwarding,
// and checks they are distinct, both work, and the option took effect.
func TestTwoGuests(t *testing.T) {
	requireSSHClient(t)
	ctx := testCtx(t)
	opts := []Options{{}, {SSHDConfig: []string{"AllowTcpForwarding no"}}}
	guests := make([]*Guest, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i := range opts {
		wg.Go(func() { guests[i], errs[i] = New(ctx, opts[i]) })
	}
	wg.Wait()
	for i, g := range guests {
		if g != nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("sshd of guest %d:\n%s", i, g.SSHDLog())
				}
				if err := g.Close(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	for _, err := range errs {
		if err != nil {
			SkipOrFail(t, err)
		}
	}
	a, b := guests[0], guests[1]
	for _, f := range []struct{ name, a, b string }{
		{"Namespace", a.Namespace, b.Namespace}, {"Addr", a.Addr, b.Addr}, {"User", a.User, b.User},
		{"Home", a.Home, b.Home}, {"Dir", a.Dir, b.Dir}, {"HostKeyFingerprint", a.HostKeyFingerprint, b.HostKeyFingerprint},
	} {
		if f.a == f.b {
			t.Errorf("both guests have %s %q", f.name, f.a)
		}
	}
	if a.UID == b.UID {
		t.Errorf("both guests have uid %d", a.UID)
	}
	for _, tc := range []struct {
		name   string
		g      *Guest
		wantOK bool
	}{
		{"default allows remote forwarding", a, true},
		{"AllowTcpForwarding no refuses it", b, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := sshCmd(ctx, tc.g, "-o", "ExitOnForwardFailure=yes",
				"-R", "127.0.0.1:0:127.0.0.1:9", tc.g.Alias, "true").CombinedOutput()
			if (err == nil) != tc.wantOK {
				t.Errorf("ssh -R to %s: err %v, want success %v; output: %s", tc.g.Alias, err, tc.wantOK, out)
			}
		})
	}
}

func TestLeftover(t *testing.T) {
	for _, tc := range []struct {
		name             string
		user, link, home string
		want             bool
	}{
		{"nothing", "xvt-no-such-user", "xvtnosuch", "/home/xvt-no-such-user", false},
		{"user exists", "root", "xvtnosuch", "/home/xvt-no-such-user", true},
		{"link exists", "xvt-no-such-user", "lo", "/home/xvt-no-such-user", true},
		{"home exists", "xvt-no-such-user", "xvtnosuch", t.TempDir(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := leftover(tc.user, tc.link, tc.home); got != tc.want {
				t.Errorf("leftover(%q, %q, %q) = %v, want %v", tc.user, tc.link, tc.home, got, tc.want)
			}
		})
	}
}

func TestSSHDConfigOrder(t *testing.T) {
	g := &Guest{Namespace: "xvt-7", Addr: "10.213.7.2", Port: 22, User: "xvt7"}
	for _, tc := range []struct {
		name        string
		extra       []string
		first, last string // first and last non-comment lines
	}{
		{"none", nil, "ListenAddress 10.213.7.2", "Subsystem sftp internal-sftp"},
		{"override first", []string{"AllowTcpForwarding no"}, "AllowTcpForwarding no", "Subsystem sftp internal-sftp"},
		{"match last", []string{"X11Forwarding no", "Match User xvt7", "  PermitTTY no"}, "X11Forwarding no", "  PermitTTY no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(g.sshdConfig("/k", "/a", "/p", tc.extra)), "\n") {
				if !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			if lines[0] != tc.first || lines[len(lines)-1] != tc.last {
				t.Errorf("first %q, last %q; want %q, %q", lines[0], lines[len(lines)-1], tc.first, tc.last)
			}
		})
	}
}

type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }

func TestSkipOrFail(t *testing.T) {
	prereq := &PrereqError{What: "program Xvfb", Hint: "install the xvfb package"}
	for _, tc := range []struct {
		name      string
		ci        string
		err       error
		wantSkip  bool
		wantFatal bool
	}{
		{"prereq skips", "", prereq, true, false},
		{"prereq fails in CI", "true", prereq, false, true},
		{"wrapped prereq skips", "false", fmt.Errorf("x: %w", prereq), true, false},
		{"other error fails", "", errors.New("boom"), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			f := &fakeTB{}
			SkipOrFail(f, tc.err)
			if (f.skipped != "") != tc.wantSkip || (f.fatal != "") != tc.wantFatal {
				t.Errorf("skipped %q, fatal %q; want skip %v, fatal %v", f.skipped, f.fatal, tc.wantSkip, tc.wantFatal)
			}
		})
	}
}

// BenchmarkNewClose measures creating and removing a guest.
func BenchmarkNewClose(b *testing.B) {
	for b.Loop() {
		g, err := New(context.Background(), Options{})
		if err != nil {
			SkipOrFail(b, err)
		}
		if err := g.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSSHTrue measures `ssh ALIAS true` with OpenSSH's client.
func BenchmarkSSHTrue(b *testing.B) {
	g := Start(b, Options{})
	for b.Loop() {
		if out, err := sshCmd(context.Background(), g, g.Alias, "true").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}
