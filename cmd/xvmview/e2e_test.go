package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// The end-to-end tests run this test binary as xvmview itself (TestMain
// below), against a real test guest (its own network namespace and sshd), a
// real Xvfb as the host display, real Xephyr, xauth, twm and xterm.

func TestMain(m *testing.M) {
	if os.Getenv("XVMVIEW_TEST_MAIN") == "1" {
		main()
		return
	}
	if addr := os.Getenv("XVMVIEW_TEST_LISTEN"); addr != "" {
		listenUntilEOF(addr)
		return
	}
	if mode := os.Getenv("XVMVIEW_TEST_XHOSTILE"); mode != "" {
		hostileX(mode)
		return
	}
	os.Exit(m.Run())
}

// world is one test guest and host display, with a user home for xvmview.
type world struct {
	t       *testing.T
	g       *testguest.Guest
	x       *testguest.Xvfb
	home    string
	runtime string
	bin     string   // the launcher; "" = this test binary as xvmview (TestMain)
	env0    []string // more environment for the launchers
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testguest.Missing(t, "program "+tool, ".ci/run installs it (scripts/install-deps.sh)")
		}
	}
}

func newWorld(t *testing.T, withGuest bool) *world {
	t.Helper()
	return newWorldWith(t, withGuest, testguest.XvfbOptions{})
}

// newWorldWith is newWorld with a host display started with xo.
func newWorldWith(t *testing.T, withGuest bool, xo testguest.XvfbOptions) *world {
	t.Helper()
	var g *testguest.Options
	if withGuest {
		g = &testguest.Options{}
	}
	return buildWorld(t, g, xo)
}

// buildWorld makes a world with a guest made with g (nil: no guest) and a
// host display made with xo.
func buildWorld(t *testing.T, g *testguest.Options, xo testguest.XvfbOptions) *world {
	t.Helper()
	withGuest := g != nil
	requireTools(t, "Xephyr", "Xvfb", "xauth", "twm", "xterm", "xlogo", "xdpyinfo", "ss")
	w := &world{t: t}
	w.x = testguest.StartXvfb(t, xo)
	if withGuest {
		w.g = testguest.Start(t, *g)
	}
	w.home = t.TempDir()
	w.runtime = filepath.Join(w.home, "run")
	must(t, os.Mkdir(w.runtime, 0o700))
	must(t, os.MkdirAll(filepath.Join(w.home, ".config", "xvmview", "profiles"), 0o700))
	must(t, os.MkdirAll(filepath.Join(w.home, ".ssh"), 0o700))
	if withGuest {
		w.sshConfig(w.g.KnownHosts)
	}
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sshConfig writes the user's ~/.ssh/config: alias "e2eguest" for the test
// guest, with the given known_hosts file.
func (w *world) sshConfig(knownHosts string) {
	cfg := w.g.HostStanza("e2eguest", knownHosts)
	must(w.t, os.WriteFile(filepath.Join(w.home, ".ssh", "config"), []byte(cfg), 0o600))
}

func (w *world) profile(name, body string) {
	must(w.t, os.WriteFile(filepath.Join(w.home, ".config", "xvmview", "profiles", name+".toml"), []byte(body), 0o600))
}

func (w *world) env() []string {
	env := []string{
		"XVMVIEW_TEST_MAIN=1",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.home,
		"XDG_CONFIG_HOME=" + filepath.Join(w.home, ".config"),
		"XDG_RUNTIME_DIR=" + w.runtime,
		"XDG_STATE_HOME=" + filepath.Join(w.home, ".local", "state"),
	}
	return append(append(env, w.x.Env()...), w.env0...)
}

// launcherOutputMax bounds what a test keeps of a launcher's stdout and
// stderr; the launchers here print a few KiB.
const launcherOutputMax = 4 << 20

// launcher is a running xvmview.
type launcher struct {
	cmd    *exec.Cmd
	stderr *testguest.LogBuffer
	stdout *testguest.LogBuffer
	done   chan struct{}
	err    error
}

func (w *world) start(args ...string) *launcher {
	w.t.Helper()
	return w.startOut(nil, args...)
}

// startOut is start with the launcher's stdout going to out (nil: collected
// in launcher.stdout).
func (w *world) startOut(out *os.File, args ...string) *launcher {
	w.t.Helper()
	l := &launcher{stderr: testguest.NewLogBuffer(launcherOutputMax), stdout: testguest.NewLogBuffer(launcherOutputMax), done: make(chan struct{})}
	l.cmd = exec.Command(cmp.Or(w.bin, os.Args[0]), args...)
	l.cmd.Env = w.env()
	l.cmd.Stdout, l.cmd.Stderr = l.stdout, l.stderr
	if out != nil {
		l.cmd.Stdout = out
	}
	must(w.t, l.cmd.Start())
	go func() { l.err = l.cmd.Wait(); close(l.done) }()
	w.t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = l.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-l.done:
			case <-time.After(20 * time.Second):
				_ = l.cmd.Process.Kill()
				<-l.done
			}
		}
		if w.t.Failed() {
			w.t.Logf("xvmview %s stderr:\n%s", strings.Join(args, " "), l.stderr.String())
		}
	})
	return l
}

// wait returns the launcher's exit status, failing the test after 30 s.
func (l *launcher) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("xvmview did not exit within 30 s; stderr:\n%s", l.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(l.err, &ee) {
		return ee.ExitCode()
	}
	if l.err != nil {
		t.Fatal(l.err)
	}
	return 0
}

// session waits until the launcher has recorded that its app runs and
// returns the session's state and cookie.
func (w *world) session(l *launcher) (session.State, xauth.Cookie) {
	w.t.Helper()
	return w.runningSession(l, 30*time.Second)
}

// runningSession waits up to limit for l's session to run with the nested
// server's cookie written, and returns its state and that cookie.
func (w *world) runningSession(l *launcher, limit time.Duration) (session.State, xauth.Cookie) {
	w.t.Helper()
	root := filepath.Join(w.runtime, "xvmview")
	var c xauth.Cookie
	s := w.waitState(l, limit, "running session with its cookie written", func(s session.State) bool {
		if !s.Running || !s.Alive() {
			return false
		}
		ents, err := xauth.ReadFile(filepath.Join(root, s.ID, "server.xauth"))
		if err != nil || len(ents) == 0 {
			return false
		}
		copy(c[:], ents[0].Data)
		return true
	})
	return s, c
}

// waitState polls the session states for one of l's launcher that ok
// accepts, up to limit; it fails the test when there is none by then, or
// none once the launcher has exited.
func (w *world) waitState(l *launcher, limit time.Duration, what string, ok func(session.State) bool) session.State {
	w.t.Helper()
	root := filepath.Join(w.runtime, "xvmview")
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		exited := false
		select {
		case <-l.done:
			exited = true
		default:
		}
		states, _ := session.ReadStates(root)
		for _, s := range states {
			if s.LauncherPID == l.cmd.Process.Pid && ok(s) {
				return s
			}
		}
		switch {
		case exited:
			w.t.Fatalf("xvmview exited (%v) with no %s; stderr:\n%s", l.err, what, l.stderr.String())
		case time.Now().After(deadline):
			w.t.Fatalf("no %s after %v; stderr:\n%s", what, limit, l.stderr.String())
		}
	}
}

// guestRun runs a shell snippet on the guest as the guest user.
func (w *world) guestRun(script string, stdin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := w.g.Command(ctx, "sh", "-c", script)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkGone asserts that nothing of the session is left: no Xephyr, no
// session directory, no guest Xauthority entry for the display, no guest
// processes.
func (w *world) checkGone(s session.State) {
	w.t.Helper()
	w.checkXephyrGone(s)
	if s.XephyrCgroup != "" {
		if _, err := os.Stat(s.XephyrCgroup); !errors.Is(err, fs.ErrNotExist) {
			w.t.Errorf("Xephyr's memory cgroup %s left behind (%v)", s.XephyrCgroup, err)
		}
	}
	w.checkRuntimeEmpty(nil)
	if w.g == nil {
		return
	}
	data, err := w.g.ReadHomeFile(".Xauthority")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.t.Fatal(err)
	}
	entries, err := xauth.Read(bytes.NewReader(data))
	if err != nil {
		w.t.Fatalf("guest Xauthority is invalid: %v", err)
	}
	gdisp := strconv.Itoa(s.Display)
	if s.GuestDisplay != "" {
		gdisp = strings.TrimPrefix(s.GuestDisplay, ":")
	}
	for _, e := range entries {
		if e.Number == gdisp {
			w.t.Errorf("guest Xauthority still has an entry for display %s: family %d", gdisp, e.Family)
		}
	}
	w.waitGuestClean()
}

// checkXephyrGone fails the test if s's Xephyr still runs.
func (w *world) checkXephyrGone(s session.State) {
	w.t.Helper()
	if argv, _ := procfs.Cmdline(s.XephyrPID); strings.Contains(strings.Join(argv, " "), "Xephyr") {
		w.t.Errorf("Xephyr pid %d still runs", s.XephyrPID)
	}
}

// checkRuntimeEmpty fails the test for each session directory left in the
// runtime root but those of the IDs in keep (or their .clean- names).
func (w *world) checkRuntimeEmpty(keep []string) {
	w.t.Helper()
	root := filepath.Join(w.runtime, "xvmview")
	ents, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.t.Fatal(err)
	}
	for _, e := range ents {
		if !slices.Contains(keep, strings.TrimPrefix(e.Name(), ".clean-")) {
			w.t.Errorf("runtime directory left behind: %s", filepath.Join(root, e.Name()))
		}
	}
}

// waitGuestClean fails the test unless the guest user's processes and
// session Xauthority directories are gone within the teardown's grace.
func (w *world) waitGuestClean() {
	w.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		procs, err := w.g.Processes()
		if err != nil {
			w.t.Fatal(err)
		}
		dirs := w.guestAuthDirs()
		if len(procs) == 0 && len(dirs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				w.t.Errorf("guest process left behind: %d %q", p.PID, p.Cmdline)
			}
			for _, d := range dirs {
				w.t.Errorf("guest session Xauthority directory left behind: %s", d)
			}
			return
		}
	}
}

// guestXauthority returns the guest's session Xauthority file of the one
// session running on the guest.
func (w *world) guestXauthority() string {
	w.t.Helper()
	dirs := w.guestAuthDirs()
	if len(dirs) != 1 {
		w.t.Fatalf("want one session Xauthority directory on the guest, have %q", dirs)
	}
	return dirs[0] + "/Xauthority"
}

// guestAuthDirs lists the session Xauthority directories the guest user
// owns in /dev/shm and /tmp (the test guest has no XDG_RUNTIME_DIR).
func (w *world) guestAuthDirs() []string {
	var out []string
	for _, dir := range []string{"/dev/shm", "/tmp"} {
		m, _ := filepath.Glob(filepath.Join(dir, "xvmview.*"))
		for _, p := range m {
			if fi, err := os.Lstat(p); err == nil && int(fi.Sys().(*syscall.Stat_t).Uid) == w.g.UID {
				out = append(out, p)
			}
		}
	}
	return out
}

// appScript is the guest app of the tests: a red xlogo window
// at +100+100, then wait for ~/stop and exit 3.
const appScript = `xlogo -bg red -fg red -geometry 185x110+100+100 &
while [ ! -e "$HOME/stop" ]; do sleep 0.1; done
exit 3`

func (w *world) remoteProfile(name, transport string) {
	w.profile(name, fmt.Sprintf(`description = "end-to-end test"
host = "e2eguest"
command = ["sh", "-c", %q]
window_manager = ["twm"]
screen = "800x600"
transport = %q
`, appScript, transport))
}

// holdDisplay runs an Xvfb on display n until the test ends, once the dead
// session's Xephyr (pid) has let go of it.
func holdDisplay(t *testing.T, n, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for procfs.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed session's Xephyr (pid %d) is still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd := exec.Command("Xvfb", fmt.Sprintf(":%d", n), "-nolisten", "tcp")
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for time.Now().Before(deadline) {
		// Ours, or a server of a test in another package that took the
		// freed number first (our Xvfb then exits): busy either way. A
		// connect, not a client: the other server has its own cookie.
		if c, err := net.Dial("unix", fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Xvfb :%d did not start and no other server holds it", n)
}

// holdGuestPort listens on the guest's 127.0.0.1:port (inside its network
// namespace) until the test ends. The listener is this test binary in
// listen mode (see TestMain), retrying until the port is free.
func (w *world) holdGuestPort(port int) {
	t := w.t
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", w.g.Namespace, os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("XVMVIEW_TEST_LISTEN=127.0.0.1:%d", port))
	stdin, err := cmd.StdinPipe()
	must(t, err)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("could not hold port %d on the guest: %q %v", port, line, err)
	}
}

// listenUntilEOF is the listen mode: bind addr (retrying for 10 s), say
// "ready", hold it until stdin closes.
func listenUntilEOF(addr string) {
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	ln.Close()
}

func atoiDisplay(t *testing.T, d string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(d, ":"))
	if err != nil {
		t.Fatalf("display %q: %v", d, err)
	}
	return n
}

func checkNoCookieInProc(t *testing.T, c xauth.Cookie) {
	t.Helper()
	needles := [][]byte{[]byte(c.Hex()), []byte(strings.ToUpper(c.Hex())), c.Bytes()}
	pids, err := procfs.PIDs()
	must(t, err)
	scanned := 0
	for _, pid := range pids {
		for what, read := range map[string]func(int) ([]string, error){"cmdline": procfs.Cmdline, "environ": procfs.Environ} {
			v, err := read(pid)
			if err != nil {
				continue // the process ended
			}
			scanned++
			b := []byte(strings.Join(v, "\x00"))
			for _, n := range needles {
				if bytes.Contains(b, n) {
					t.Errorf("the cookie appears in /proc/%d/%s", pid, what)
				}
			}
		}
	}
	if scanned < 10 {
		t.Fatalf("scanned only %d /proc files", scanned)
	}
}

// writeTestPNG keeps a failing test's screenshot for a human to look at.
func writeTestPNG(t *testing.T, img image.Image) error {
	t.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("xvmview-%s.png", strings.ReplaceAll(t.Name(), "/", "_")))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	t.Logf("screenshot saved to %s", path)
	return png.Encode(f, img)
}

// runStdin runs xvmview (this test binary) to completion with stdin and
// returns its exit status and output. Its stderr is logged if the test fails.
func (w *world) runStdin(stdin string, args ...string) (code int, stdout, stderr string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = w.env()
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		w.t.Fatalf("xvmview %s: %v", strings.Join(args, " "), err)
	}
	w.t.Cleanup(func() {
		if w.t.Failed() {
			w.t.Logf("xvmview %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, o.String(), e.String())
		}
	})
	return code, o.String(), e.String()
}

func wantAll(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, s := range wants {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, text)
		}
	}
}
