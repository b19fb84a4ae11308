package session

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
	"github.com/jezek/xgb/xtest"

	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// The clipboard end to end: a real Xvfb as the host display, real Xephyr
// in the trust frame, xclip on both displays, the user's keys pressed on the
// host display through XTEST, and a nested client that polls the CLIPBOARD
// in a loop as a hostile guest would.

type clipWorld struct {
	t       *testing.T
	x       *testguest.Xvfb
	host    *xgb.Conn
	root    string
	got     string // the nested poller's output file
	cancel  context.CancelFunc
	done    chan struct{}
	started chan struct{}

	mu      sync.Mutex
	phases  []string
	notices []string
	ended   bool     // Run returned
	late    []string // phases and notices after Run returned
}

func newClipWorld(t *testing.T) *clipWorld {
	t.Helper()
	testguest.NeedProgram(t, "Xephyr", "xserver-xephyr")
	testguest.NeedProgram(t, "xclip", "xclip")
	w := &clipWorld{t: t, done: make(chan struct{}), started: make(chan struct{})}
	w.x = testguest.StartXvfb(t, testguest.XvfbOptions{})
	nc, err := net.Dial("unix", fmt.Sprintf("/tmp/.X11-unix/X%d", w.x.Num))
	if err != nil {
		t.Fatal(err)
	}
	w.host, err = xgb.NewConnNetWithCookieHex(nc, strings.Repeat("00", 16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.host.Close)
	if err := xtest.Init(w.host); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w.got = filepath.Join(dir, "got")
	// The "guest": polls its CLIPBOARD every 50 ms and notes every answer.
	poll := fmt.Sprintf(`while :; do if t=$(xclip -o -selection clipboard 2>/dev/null); then printf '%%s\n' "$t" >> %s; fi; sleep 0.05; done`, w.got)
	p := testProfile(t, "cliptest", fmt.Sprintf("host = \"local\"\ncommand = [\"sh\", \"-c\", %q]\nclipboard_max_bytes = 1024\ncolor = \"#3465a4\"\n", poll))
	w.root = filepath.Join(dir, "run")
	pl, err := NewPlan(p, nil, Facts{RuntimeRoot: w.root, HostEnv: append(os.Environ(), w.x.Env()...), Hostname: "cliptest-host"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	o := Options{
		Progress: func(phase string, _ time.Duration) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.ended {
				w.late = append(w.late, phase)
			}
			w.phases = append(w.phases, phase)
			if strings.HasPrefix(phase, "started ") {
				close(w.started)
			}
		},
		Notice: func(msg string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.ended {
				w.late = append(w.late, msg)
			}
			w.notices = append(w.notices, msg)
		},
	}
	go func() {
		defer close(w.done)
		_, err := Run(ctx, pl, o)
		w.mu.Lock()
		w.ended = true
		w.mu.Unlock()
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	select {
	case <-w.started:
	case <-w.done:
		t.Fatal("Run ended before the app started")
	case <-time.After(60 * time.Second):
		t.Fatal("the app did not start within 60 s")
	}
	return w
}

func (w *clipWorld) state() State {
	w.t.Helper()
	states, err := ReadStates(w.root)
	if err != nil || len(states) != 1 {
		w.t.Fatalf("states %+v, %v", states, err)
	}
	return states[0]
}

// xclip runs xclip on the host display (nested false) or the nested one.
func (w *clipWorld) xclip(nested bool, stdin string, args ...string) (string, bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "xclip", args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + w.x.Display}
	if nested {
		s := w.state()
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("DISPLAY=:%d", s.Display),
			"XAUTHORITY=" + filepath.Join(w.root, s.ID, "client.xauth")}
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out strings.Builder
	cmd.Stdout = &out
	if len(args) > 0 && args[0] == "-i" {
		// xclip -i forks a server that owns the selection and keeps
		// running: let it go, it ends with its display.
		cmd.Stdout = nil
	}
	err := cmd.Run()
	return out.String(), err == nil
}

// key presses mods+sym on the host display, with the pointer over the
// frame, as the user would.
func (w *clipWorld) key(sym xproto.Keysym) {
	w.t.Helper()
	h := w.host
	s := xproto.Setup(h).DefaultScreen(h)
	// The frame is centred on the screen without a window manager.
	if err := xproto.WarpPointerChecked(h, 0, s.Root, 0, 0, 0, 0, int16(s.WidthInPixels/2), int16(s.HeightInPixels/2)).Check(); err != nil {
		w.t.Fatal(err)
	}
	testguest.PressKeys(w.t, h, testguest.ControlL, testguest.ShiftL, sym)
}

func (w *clipWorld) guestGot() string {
	b, _ := os.ReadFile(w.got)
	return string(b)
}

func (w *clipWorld) waitPhase(sub string) {
	w.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		w.mu.Lock()
		for _, p := range w.phases {
			if strings.Contains(p, sub) {
				w.mu.Unlock()
				return
			}
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			w.t.Fatalf("no phase with %q; phases: %q; notices: %q", sub, w.phases, w.notices)
		}
	}
}

func (w *clipWorld) waitNotice(sub string) {
	w.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		w.mu.Lock()
		for _, n := range w.notices {
			if strings.Contains(n, sub) {
				w.mu.Unlock()
				return
			}
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			w.t.Fatalf("no notice with %q; notices: %q", sub, w.notices)
		}
	}
}

func TestClipboardCrossesOnlyOnKeys(t *testing.T) {
	w := newClipWorld(t)
	const hostSecret = "host secret https://example.org/?t=1"
	if _, ok := w.xclip(false, hostSecret, "-i", "-selection", "clipboard"); !ok {
		t.Fatal("xclip -i on the host failed")
	}
	// The guest polls for 1 s: nothing of the host's clipboard reaches it.
	time.Sleep(time.Second)
	if got := w.guestGot(); got != "" {
		t.Fatalf("before any key the guest read %q", got)
	}

	w.key('v')
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.guestGot(), hostSecret); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after Ctrl+Shift+V the guest read %q, want the host's text", w.guestGot())
		}
	}
	w.waitPhase("the guest pasted the 36 bytes; withdrawn")
	time.Sleep(500 * time.Millisecond) // ten more polls
	if got := w.guestGot(); strings.Count(got, hostSecret) != 1 {
		t.Errorf("the guest read the host's text %d times, want once (one paste): %q", strings.Count(got, hostSecret), got)
	}
	if out, ok := w.xclip(true, "", "-o", "-selection", "primary"); ok {
		t.Errorf("the guest's PRIMARY holds %q", out)
	}

	// Out of the guest: its CLIPBOARD to the host's, on Ctrl+Shift+C.
	const guestText = "text from the guest"
	w.guestOwns(guestText)
	if out, _ := w.xclip(false, "", "-o", "-selection", "clipboard"); out != hostSecret {
		t.Fatalf("before Ctrl+Shift+C the host's clipboard holds %q", out)
	}
	w.key('c')
	w.waitPhase("19 bytes copied from the guest to the host's CLIPBOARD")
	if out, ok := w.xclip(false, "", "-o", "-selection", "clipboard"); !ok || out != guestText {
		t.Errorf("after Ctrl+Shift+C the host's clipboard holds %q (%v), want the guest's text", out, ok)
	}

	// The command line: pull and push through the control socket.
	s := w.state()
	fi, err := os.Stat(filepath.Join(w.root, s.ID, controlName))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket: %v, mode %v; want a 0600 socket", err, fi.Mode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got, err := ClipPull(ctx, w.root, s, false); err != nil || string(got) != guestText {
		t.Errorf("ClipPull: %q, %v", got, err)
	}
	if err := ClipPush(ctx, w.root, s, []byte("pushed")); err != nil {
		t.Errorf("ClipPush: %v", err)
	}
	// The guest's poller takes the one paste.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.guestGot(), "pushed\n"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after ClipPush the guest read %q", w.guestGot())
		}
	}

	// Above the cap (1024 bytes): refused, with a notice, the host's
	// clipboard untouched.
	big := strings.Repeat("b", 2000)
	w.guestOwns(big)
	w.key('c')
	w.waitNotice("larger than the profile's clipboard_max_bytes (1024)")
	if out, _ := w.xclip(false, "", "-o", "-selection", "clipboard"); out != guestText {
		t.Errorf("after a refused copy the host's clipboard holds %d bytes, want the earlier %q", len(out), guestText)
	}
	if err := ClipPush(ctx, w.root, s, []byte(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ClipPush of 2000 bytes: %v, want refused", err)
	}
	if _, err := ClipPull(ctx, w.root, s, false); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("ClipPull of 2000 bytes: %v, want refused", err)
	}

	// The log side: direction and size, never the text.
	w.mu.Lock()
	for _, line := range append(append([]string(nil), w.phases...), w.notices...) {
		for _, secret := range []string{hostSecret, guestText, "pushed", "bbbb"} {
			if strings.Contains(line, secret) {
				t.Errorf("the session's log has the clipboard's text %q: %q", secret, line)
			}
		}
	}
	w.mu.Unlock()

	// The session ends: nothing from the guest stays on the host's clipboard.
	w.cancel()
	<-w.done
	if out, ok := w.xclip(false, "", "-o", "-selection", "clipboard"); ok {
		t.Errorf("after the session the host's clipboard holds %q", out)
	}
}

// TestTeardownUnderServerGrab: when the session ends, a client of the nested
// display that the teardown does not end (a guest program that left the
// app's process group, or any program on the guest with the cookie under
// transport tcp) holds the server grabbed, so Xephyr answers nobody else.
// The teardown still ends, Xephyr included.
func TestTeardownUnderServerGrab(t *testing.T) {
	w := newClipWorld(t)
	s := w.state()
	g := w.nestedConn()
	defer g.Close()
	if err := xproto.GrabServerChecked(g).Check(); err != nil {
		t.Fatal(err)
	}
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the session's teardown did not end while a nested client held the server grabbed")
	}
	if procfs.Alive(s.XephyrPID) {
		t.Errorf("Xephyr (PID %d) still runs after the session", s.XephyrPID)
	}
}

// guestOwns makes a nested xclip the guest's CLIPBOARD owner with text and
// waits until it answers with it.
func (w *clipWorld) guestOwns(text string) {
	w.t.Helper()
	if _, ok := w.xclip(true, text, "-i", "-selection", "clipboard"); !ok {
		w.t.Fatal("xclip -i in the guest failed")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if out, _ := w.xclip(true, "", "-o", "-selection", "clipboard"); out == text {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatal("the guest's xclip did not take its CLIPBOARD")
		}
	}
}

func TestClipboardOff(t *testing.T) {
	p := testProfile(t, "off", "host = \"local\"\ncommand = [\"true\"]\nclipboard = false\n")
	pl, err := NewPlan(p, nil, Facts{RuntimeRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Frame.Keys) != 0 {
		t.Errorf("clipboard = false still grabs keys %+v", pl.Frame.Keys)
	}
	p = testProfile(t, "on", "host = \"local\"\ncommand = [\"true\"]\nclipboard_copy_key = \"super+c\"\n")
	pl, err = NewPlan(p, nil, Facts{RuntimeRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Frame.Keys) != 2 || pl.Frame.Keys[0].Mods != xproto.ModMask4 || pl.Frame.Keys[0].Keysym != 'c' ||
		pl.Frame.Keys[1].Mods != xproto.ModMaskControl|xproto.ModMaskShift || pl.Frame.Keys[1].Keysym != 'v' {
		t.Errorf("keys %+v, want super+c and ctrl+shift+v", pl.Frame.Keys)
	}
}

// TestClipPullForTerminal: the guest's text on a terminal goes through the
// sanitizer (an OSC title change and a cursor query shown, not obeyed);
// raw, it is the bytes as sent. The answer's size is checked.
func TestClipPullForTerminal(t *testing.T) {
	root := t.TempDir()
	st := State{ID: "abcdef012345", Profile: "web"}
	if err := os.Mkdir(filepath.Join(root, st.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	evil := "url\x1b]2;owned\x07\x1b[6n\n"
	l, err := net.Listen("unix", filepath.Join(root, st.ID, controlName))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	answers := []string{fmt.Sprintf("ok %d\n%s", len(evil), evil), fmt.Sprintf("ok %d\n%s", len(evil), evil), "ok 99999999999\n", "error the clipboard holds no text\n"}
	go func() {
		for _, a := range answers {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 5)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte(a))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ClipPull(ctx, root, st, true)
	if err != nil || strings.ContainsRune(string(got), 0x1b) || strings.ContainsRune(string(got), 0x07) || !strings.Contains(string(got), "url") {
		t.Errorf("ClipPull for a terminal = %q, %v; want the text without ESC or BEL", got, err)
	}
	if got, err := ClipPull(ctx, root, st, false); err != nil || string(got) != evil {
		t.Errorf("ClipPull raw = %q, %v; want the bytes as sent", got, err)
	}
	if _, err := ClipPull(ctx, root, st, false); err == nil {
		t.Error("ClipPull took an answer of 99999999999 bytes")
	}
	if _, err := ClipPull(ctx, root, st, false); err == nil || err.Error() != "the clipboard holds no text" {
		t.Errorf("ClipPull of an error answer: %v", err)
	}
	if _, err := ClipPull(ctx, root, State{ID: "../x"}, false); err == nil {
		t.Error("ClipPull took the session id ../x")
	}
}

// TestControlRefusesOtherUsers: the control socket answers only its own
// user. The session directory (0700) already keeps others away; this is the
// check behind it, tested with a socket others can reach and a client
// running as nobody.
func TestControlRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	// Debian's, not a python3 earlier in PATH that nobody cannot run.
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		testguest.Missing(t, python, "install python3-minimal")
	}
	// Not t.TempDir: its parent is private to us.
	dir, err := os.MkdirTemp("", "xvmview-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "control.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	// A runner without a clipboard: a request that got past the check
	// would crash the test, one from the same user must not come.
	r := &runner{}
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			go r.control(c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", `
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b"pull\n")
    print(repr(s.recv(100)))
except OSError:
    print("b''")  # closed unanswered
`, path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "b''" {
		t.Errorf("a client of another user got %s, want the connection closed unanswered", got)
	}

	// Our own user gets past the check (here: to "unknown request").
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "hello\n")
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	if got := string(buf[:n]); got != "error unknown request\n" {
		t.Errorf("our own user got %q", got)
	}
}

// TestCopyOutDropsControls: text the guest offers reaches the host's
// clipboard without the controls that act when it is pasted into a
// terminal (ESC [201~ ends a bracketed paste); the log counts what was
// dropped, never the text.
func TestCopyOutDropsControls(t *testing.T) {
	w := newClipWorld(t)
	w.guestOwns("a\x1b[201~b\x07c")
	w.key('c')
	w.waitPhase("8 bytes copied from the guest to the host's CLIPBOARD (2 bytes of control characters dropped)")
	if out, ok := w.xclip(false, "", "-o", "-selection", "clipboard"); !ok || out != "a[201~bc" {
		t.Errorf("the host's clipboard holds %q (%v), want %q", out, ok, "a[201~bc")
	}
}

// nestedConn connects to the nested display with the session's cookie, as
// any guest client may.
func (w *clipWorld) nestedConn() *xgb.Conn {
	w.t.Helper()
	s := w.state()
	f, err := os.Open(filepath.Join(w.root, s.ID, "client.xauth"))
	if err != nil {
		w.t.Fatal(err)
	}
	entries, err := xauth.Read(f)
	f.Close()
	if err != nil || len(entries) != 1 {
		w.t.Fatalf("client.xauth: %v, %d entries", err, len(entries))
	}
	nc, err := net.Dial("unix", fmt.Sprintf("/tmp/.X11-unix/X%d", s.Display))
	if err != nil {
		w.t.Fatal(err)
	}
	g, err := xgb.NewConnNetWithCookieHex(nc, fmt.Sprintf("%x", entries[0].Data))
	if err != nil {
		w.t.Fatal(err)
	}
	return g
}

// TestNoReportsAfterRun: a 'clip pull' still waiting on a guest owner that
// never answers when the session ends is cut short by the teardown: nothing
// calls Progress or Notice after Run returned.
func TestNoReportsAfterRun(t *testing.T) {
	w := newClipWorld(t)
	s := w.state()
	g := w.nestedConn()
	defer g.Close()
	clip, err := xproto.InternAtom(g, false, 9, "CLIPBOARD").Reply()
	if err != nil {
		t.Fatal(err)
	}
	win, _ := xproto.NewWindowId(g)
	root := xproto.Setup(g).DefaultScreen(g).Root
	if err := xproto.CreateWindowChecked(g, 0, win, root, 0, 0, 1, 1, 0, xproto.WindowClassInputOnly, 0, 0, nil).Check(); err != nil {
		t.Fatal(err)
	}
	if err := xproto.SetSelectionOwnerChecked(g, win, clip.Atom, xproto.TimeCurrentTime).Check(); err != nil {
		t.Fatal(err)
	}
	pulled := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := ClipPull(ctx, w.root, s, false)
		pulled <- err
	}()
	// The pull is in flight once its request reaches the silent owner.
	asked := make(chan struct{})
	go func() {
		for {
			ev, _ := g.WaitForEvent()
			if _, ok := ev.(xproto.SelectionRequestEvent); ok {
				close(asked)
				return
			}
			if ev == nil {
				return
			}
		}
	}()
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatal("the pull's request did not reach the guest's owner")
	}
	w.cancel()
	<-w.done
	<-pulled
	// The pull's own wait would have ended ClipboardTimeout after it began.
	time.Sleep(ClipboardTimeout + time.Second)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.late) > 0 {
		t.Errorf("reports after Run returned: %q", w.late)
	}
}
