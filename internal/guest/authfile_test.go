package guest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

func TestCheckAuthDir(t *testing.T) {
	good := []string{
		"/dev/shm/xvmview.Ab3dE5fG7h",
		"/tmp/xvmview.0123456789",
		"/run/user/1000/xvmview.abcdefghij",
		"/var/run/user/0/xvmview.ABCDEFGHIJ",
	}
	bad := []string{
		"", "xvmview.Ab3dE5fG7h", "/dev/shm/xvmview.Ab3dE5fG7", "/dev/shm/xvmview.Ab3dE5fG7hh",
		"/dev/shm/../etc/xvmview.Ab3dE5fG7h", "/dev/shm//xvmview.Ab3dE5fG7h", "/dev/shm/x/xvmview.Ab3dE5fG7h",
		"/home/alice/xvmview.Ab3dE5fG7h", "/run/user/alice/xvmview.Ab3dE5fG7h", "/run/user/1000/../../etc/xvmview.abcdefghij",
		"/tmp/xvmview.Ab3dE5fG7h\n", "/tmp/xvmview.Ab3dE5fG7h\x1b]2;x\a", "/tmp/xvmview.Ab3d$(id)7h", "/tmp/xvmview.Ab3dE5fG7h/..",
		"/tmp/xvmview.Ab3dE5fG'h", "/tmp/xvmview.Ab3dE5fG\u00e9",
	}
	for _, d := range good {
		if err := CheckAuthDir(d); err != nil {
			t.Errorf("CheckAuthDir(%q) = %v, want nil", d, err)
		}
	}
	for _, d := range bad {
		err := CheckAuthDir(d)
		if err == nil {
			t.Errorf("CheckAuthDir(%q) = nil, want an error", d)
			continue
		}
		if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("CheckAuthDir(%q) error carries control bytes: %q", d, err)
		}
	}
}

// numericLine is a FamilyWild entry for display 42 with a fixed cookie, as
// xauth nlist prints it.
const numericLine = "ffff 0000 0002 3432 0012 4d49542d4d414749432d434f4f4b49452d31 0010 00112233445566778899aabbccddeeff\n"

// authDirsOf lists the xvmview.* directories the guest user owns in dir.
func authDirsOf(t *testing.T, g *testguest.Guest, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "xvmview.*"))
	var out []string
	for _, p := range m {
		if fi, err := os.Lstat(p); err == nil && int(fi.Sys().(*syscall.Stat_t).Uid) == g.UID {
			out = append(out, p)
		}
	}
	return out
}

// cleanAuthDirs removes what a failed test left of the guest user's
// directories in /dev/shm and /tmp.
func cleanAuthDirs(t *testing.T, g *testguest.Guest) {
	t.Cleanup(func() {
		for _, d := range append(authDirsOf(t, g, "/dev/shm"), authDirsOf(t, g, "/tmp")...) {
			t.Errorf("left behind: %s", d)
			_ = os.RemoveAll(d)
		}
	})
}

// checkAuthFile asserts what a session's file on the guest must be: in a
// 0700 directory of the guest user on a tmpfs, 0600, holding the entry, and
// usable by the guest's xauth through XAUTHORITY; ~/.Xauthority untouched.
func checkAuthFile(t *testing.T, g *testguest.Guest, c *Client, a *AuthFile) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(a.Dir, &st); err != nil {
		t.Fatal(err)
	}
	const tmpfsMagic = 0x01021994
	if st.Type != tmpfsMagic {
		t.Errorf("%s is on filesystem type %#x, want tmpfs", a.Dir, st.Type)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{a.Dir, 0o700 | os.ModeDir}, {a.Path, 0o600}} {
		fi, err := os.Lstat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != f.mode || int(fi.Sys().(*syscall.Stat_t).Uid) != g.UID {
			t.Errorf("%s: mode %v uid %d, want %v uid %d", f.path, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, f.mode, g.UID)
		}
	}
	var out strings.Builder
	cmd, err := Command([]string{"XAUTHORITY=" + a.Path}, []string{"xauth", "nlist"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background(), cmd, nil, &out, nil); err != nil || strings.Join(strings.Fields(out.String()), " ") != strings.TrimSpace(numericLine) {
		t.Errorf("xauth nlist with XAUTHORITY=%s: %q, %v; want %q", a.Path, out.String(), err, numericLine)
	}
	if _, err := g.ReadHomeFile(".Xauthority"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the guest's ~/.Xauthority exists (%v): it must not be written", err)
	}
}

func waitGone(t *testing.T, path, after string) {
	t.Helper()
	eventually(t, path+" is removed after "+after, func() bool {
		_, err := os.Lstat(path)
		return errors.Is(err, fs.ErrNotExist)
	})
}

// TestAuthFileReal: the keeper on a real guest (sshd, sh, mktemp, xauth)
// makes the file on a tmpfs and removes it when its channel closes, however
// that happens.
func TestAuthFileReal(t *testing.T) {
	g, tg, c := realGuest(t)
	cleanAuthDirs(t, g)
	ctx := context.Background()
	top := t

	t.Run("close", func(t *testing.T) {
		a, err := c.NewAuthFile(ctx, []byte(numericLine))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.Dir, "/dev/shm/xvmview.") {
			t.Errorf("Dir = %s, want one in /dev/shm (the test guest has no XDG_RUNTIME_DIR)", a.Dir)
		}
		checkAuthFile(t, g, c, a)
		if err := a.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := os.Lstat(a.Dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Close returned (%v)", a.Dir, err)
		}
		if err := a.Close(ctx); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	t.Run("close out of time", func(t *testing.T) {
		a, err := c.NewAuthFile(ctx, []byte(numericLine))
		if err != nil {
			t.Fatal(err)
		}
		done, cancel := context.WithCancel(ctx)
		cancel()
		// No time to wait for the keeper's word: Close says so, in a way
		// the launcher can tell, and the keeper still removes the file.
		if err := a.Close(done); !errors.Is(err, ErrKeeperUnconfirmed) || !strings.Contains(err.Error(), a.Dir) {
			t.Errorf("Close with no time = %v, want ErrKeeperUnconfirmed naming %s", err, a.Dir)
		}
		waitGone(t, a.Dir, "Close ran out of time")
	})

	t.Run("dropped connection", func(t *testing.T) {
		c2 := dialReal(t, tg)
		defer c2.Close()
		a, err := c2.NewAuthFile(ctx, []byte(numericLine))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.KillSessions(); err != nil {
			t.Fatal(err)
		}
		waitGone(t, a.Dir, "sshd died")
		c = dialReal(top, tg) // KillSessions ended c's connection too
	})

	t.Run("client closed without Close", func(t *testing.T) {
		c2 := dialReal(t, tg)
		a, err := c2.NewAuthFile(ctx, []byte(numericLine))
		if err != nil {
			t.Fatal(err)
		}
		c2.Close()
		waitGone(t, a.Dir, "the client closed the connection")
	})

	t.Run("bad entry", func(t *testing.T) {
		for _, e := range []string{"", "ffff\nffff\n", "no newline"} {
			if _, err := c.NewAuthFile(ctx, []byte(e)); err == nil {
				t.Errorf("NewAuthFile(%q) succeeded", e)
			}
		}
		// One line that xauth refuses: an error with xauth's words, and
		// nothing left.
		_, err := c.NewAuthFile(ctx, []byte("zz not numeric\n"))
		var ae *AuthFileError
		if !errors.As(err, &ae) || ae.Status == 0 {
			t.Fatalf("NewAuthFile(garbage) = %v, want an *AuthFileError with xauth's status", err)
		}
		if d := authDirsOf(t, g, "/dev/shm"); len(d) > 0 {
			eventually(t, "the failed keeper's directory is removed", func() bool { return len(authDirsOf(t, g, "/dev/shm")) == 0 })
		}
	})

	t.Run("canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.NewAuthFile(cctx, []byte(numericLine)); !errors.Is(err, context.Canceled) {
			t.Errorf("NewAuthFile with a canceled context: %v", err)
		}
		eventually(t, "nothing is left in /dev/shm", func() bool { return len(authDirsOf(t, g, "/dev/shm")) == 0 })
	})
}

// TestAuthFileRuntimeDir: with XDG_RUNTIME_DIR set (as pam_systemd does) the
// file goes there when it is a private directory of the user, else to
// /dev/shm.
func TestAuthFileRuntimeDir(t *testing.T) {
	rt := fmt.Sprintf("/run/user/%d", 4000000000+os.Getpid()%100000000)
	if err := os.MkdirAll("/run/user", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(rt) })
	// pam_systemd mounts a tmpfs there; so does the test, before the guest's
	// sshd starts in a mount namespace of its own that copies this one.
	if err := syscall.Mount("tmpfs", rt, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0700,size=1m"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", rt, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(rt, syscall.MNT_DETACH) })
	g := testguest.Start(t, testguest.Options{SSHDConfig: []string{"SetEnv XDG_RUNTIME_DIR=" + rt}})
	cleanAuthDirs(t, g)
	tg, err := Resolve(g.Alias, Overrides{}, Config{SSHConfigFile: g.SSHConfig, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := dialReal(t, tg)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		uid   int
		where string
	}{
		{"private", 0o700, g.UID, rt + "/xvmview."},
		{"group and others can enter", 0o755, g.UID, "/dev/shm/xvmview."},
		{"owned by someone else", 0o700, 0, "/dev/shm/xvmview."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Chown(rt, tc.uid, g.GID); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(rt, tc.mode); err != nil {
				t.Fatal(err)
			}
			a, err := c.NewAuthFile(ctx, []byte(numericLine))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(a.Dir, tc.where) {
				t.Errorf("Dir = %s, want it in %s", a.Dir, tc.where)
			}
			checkAuthFile(t, g, c, a)
			if err := a.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
			waitGone(t, a.Dir, "Close")
		})
	}
}

// TestAuthFileHostileReport: a guest whose mktemp reports a path of its
// choosing (here with a terminal escape) gets refused; the error shows no
// raw control bytes, and the keeper's channel is closed.
func TestAuthFileHostileReport(t *testing.T) {
	g, tg, _ := realGuest(t)
	cleanAuthDirs(t, g)
	bin := t.TempDir()
	testguest.Reachable(t, bin)
	evil := fmt.Sprintf("/tmp/xvmview-evil-%d", os.Getpid())
	t.Cleanup(func() { _ = os.RemoveAll(evil) })
	mktemp := "#!/bin/sh\nmkdir -m 700 " + evil + " && printf '%s\\033]2;pwned\\007\\n' " + evil + "\n"
	if err := os.WriteFile(filepath.Join(bin, "mktemp"), []byte(mktemp), 0o755); err != nil {
		t.Fatal(err)
	}
	shell := filepath.Join(bin, "login-shell")
	if err := os.WriteFile(shell, []byte("#!/bin/sh\nPATH="+bin+":$PATH\nexport PATH\nexec /bin/sh \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("usermod", "-s", shell, g.User).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v: %s", err, out)
	}
	c := dialReal(t, tg)
	_, err := c.NewAuthFile(context.Background(), []byte(numericLine))
	var ae *AuthFileError
	if !errors.As(err, &ae) {
		t.Fatalf("NewAuthFile = %v, want an *AuthFileError", err)
	}
	if strings.ContainsAny(err.Error(), "\x1b\a\n") {
		t.Errorf("the error carries raw control bytes: %q", err)
	}
	if !strings.Contains(err.Error(), `^[]2;pwned^G`) {
		t.Errorf("the error does not show the report escaped: %q", err)
	}
	// The keeper's channel is closed: it ends.
	eventually(t, "the keeper ends", func() bool { return len(leftovers(t, g)) == 0 })
}

// TestKeeperSignalEarly: a keeper given up on while it starts (SIGTERM to
// its process group, as sshd sends it, then its stdin closed) at any point
// leaves no directory. Before the keeper ignored signals until its trap
// was set, one that came between mktemp and the trap left the directory
// (the loaded CI run of TestAuthFileReal/canceled caught it). Run here with
// sh, mktemp and xauth of this machine; XDG_RUNTIME_DIR unset, so the
// directories go to /dev/shm, as root's (the guest keepers of the other
// tests run as their guest users).
func TestKeeperSignalEarly(t *testing.T) {
	testguest.NeedProgram(t, "xauth", "xauth")
	mine := func() map[string]bool {
		t.Helper()
		m, err := filepath.Glob("/dev/shm/xvmview.*")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, p := range m {
			if fi, err := os.Lstat(p); err == nil && fi.Sys().(*syscall.Stat_t).Uid == uint32(os.Getuid()) {
				out[p] = true
			}
		}
		return out
	}
	before := mine()
	for i := range 300 {
		cmd := exec.Command("sh", "-c", KeeperCommand())
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Spread the signal over the keeper's first few milliseconds.
		time.Sleep(time.Duration(i%30) * 100 * time.Microsecond)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		stdin.Close()
		_ = cmd.Wait()
	}
	for p := range mine() {
		if !before[p] {
			t.Errorf("a keeper signalled early left %s", p)
			_ = os.RemoveAll(p)
		}
	}
}
