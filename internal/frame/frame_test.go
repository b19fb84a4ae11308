package frame

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
	"github.com/jezek/xgb/xtest"

	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

func TestDefaultColor(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range []string{"web", "bank", "demo", "mail", "work", "desktop", "firefox-domu", "a", "b", "c", "d", "e"} {
		c := DefaultColor(name)
		if c != DefaultColor(name) {
			t.Errorf("DefaultColor(%q) changes between calls", name)
		}
		found := false
		for _, p := range Palette {
			found = found || p == c
		}
		if !found {
			t.Errorf("DefaultColor(%q) = %q, not in the palette", name, c)
		}
		seen[c] = true
	}
	if len(seen) < 5 {
		t.Errorf("12 names got only %d distinct colours: %v", len(seen), seen)
	}
	// Fixed forever: users learn their profiles' colours.
	if got := DefaultColor("web"); got != DefaultColor("web") || got == "" {
		t.Errorf("DefaultColor(web) = %q", got)
	}
}

func TestParseHex(t *testing.T) {
	for _, tt := range []struct {
		in      string
		r, g, b uint16
		bad     bool
	}{
		// XParseColor: the digits are the high bits (Xlib's XParseColor(3)
		// says #3a7 is #3000a0007000), not repeated as in CSS.
		{in: "#f00", r: 0xf000},
		{in: "#3a7", r: 0x3000, g: 0xa000, b: 0x7000},
		{in: "#cc0000", r: 0xcc00},
		{in: "#123456", r: 0x1200, g: 0x3400, b: 0x5600},
		{in: "#123456789", r: 0x1230, g: 0x4560, b: 0x7890},
		{in: "#0000ffff0000", g: 0xffff},
		{in: "cc0000", bad: true},
		{in: "#cc000", bad: true},
		{in: "#", bad: true},
		{in: "#ggg", bad: true},
		{in: "#+1+1+1", bad: true},
	} {
		r, g, b, err := ParseHex(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseHex(%q) = %x %x %x, want an error", tt.in, r, g, b)
			}
			continue
		}
		if err != nil || r != tt.r || g != tt.g || b != tt.b {
			t.Errorf("ParseHex(%q) = %x %x %x, %v; want %x %x %x", tt.in, r, g, b, err, tt.r, tt.g, tt.b)
		}
	}
}

func TestBound(t *testing.T) {
	for _, tt := range []struct {
		hostW, hostH, maxW, maxH, w, h int
	}{
		{1600, 1200, 0, 0, 1600 - 2*DefaultMargin, 1200 - 2*DefaultMargin},
		{1600, 1200, 1000, 700, 1000, 700},
		{1600, 1200, 1600, 1200, 1600 - 2*MinMargin, 1200 - 2*MinMargin}, // never the whole screen
		{1600, 1200, 5000, 0, 1600 - 2*MinMargin, 1200 - 2*DefaultMargin},
		{100, 100, 0, 0, minInner, minInner},
	} {
		w, h := Bound(tt.hostW, tt.hostH, tt.maxW, tt.maxH)
		if w != tt.w || h != tt.h {
			t.Errorf("Bound(%d, %d, %d, %d) = %dx%d, want %dx%d", tt.hostW, tt.hostH, tt.maxW, tt.maxH, w, h, tt.w, tt.h)
		}
	}
}

// world is a host display (Xvfb without a window manager, as kiosk and
// tiling setups run) with a frame on it and Xephyr inside the frame.
type world struct {
	t      *testing.T
	x      *testguest.Xvfb
	host   *xgb.Conn // the test's own connection to the host display
	frame  *Frame
	srv    *xephyr.Server
	cookie xauth.Cookie
	xauth  string // client Xauthority for the nested display

	mu      sync.Mutex
	notices []string
}

func dialHost(t *testing.T, x *testguest.Xvfb) *xgb.Conn {
	t.Helper()
	nc, err := net.Dial("unix", fmt.Sprintf("/tmp/.X11-unix/X%d", x.Num))
	if err != nil {
		t.Fatal(err)
	}
	// Xvfb without -auth admits local clients; xgb wants some cookie.
	conn, err := xgb.NewConnNetWithCookieHex(nc, strings.Repeat("00", 16))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func need(t *testing.T, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			testguest.Missing(t, "program "+p, "run scripts/install-deps.sh")
		}
	}
}

// newWorld starts a 1600x1200 Xvfb, a frame with o on it, and Xephyr with
// -parent the frame, -resizeable and -screen as the session passes them.
func newWorld(t *testing.T, o Options) *world {
	t.Helper()
	need(t, "Xephyr", "xrandr")
	w := &world{t: t}
	w.x = testguest.StartXvfb(t, testguest.XvfbOptions{Screen: "1600x1200x24"})
	w.host = dialHost(t, w.x)
	t.Cleanup(w.host.Close)
	w.startIn(o)
	return w
}

// startIn opens the frame with o on w's host display and starts Xephyr in it.
func (w *world) startIn(o Options) {
	t := w.t
	t.Helper()
	o.Notice = func(s string) { w.mu.Lock(); w.notices = append(w.notices, s); w.mu.Unlock() }
	o.Info = o.Notice
	f, err := New(context.Background(), dialHost(t, w.x), o)
	if err != nil {
		t.Fatal(err)
	}
	w.frame = f
	t.Cleanup(f.Close)

	c, err := xauth.NewCookie()
	if err != nil {
		t.Fatal(err)
	}
	w.cookie = c
	dir := t.TempDir()
	authFile := filepath.Join(dir, "server.xauth")
	if err := xauth.WriteFile(authFile, []xauth.Entry{{Family: xauth.FamilyWild, Name: xauth.CookieName, Data: c.Bytes()}}); err != nil {
		t.Fatal(err)
	}
	stderr := testguest.NewLogBuffer(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	screen := ""
	if !o.Fullscreen {
		screen = fmt.Sprintf("%dx%d", o.Width, o.Height)
	}
	srv, err := xephyr.Start(ctx, xephyr.Options{
		AuthFile: authFile, Screen: screen, Resizeable: true, NoHostGrab: true, Title: o.Title, Name: o.Instance,
		Parent: f.Parent(), Env: []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + w.x.Display}, Stderr: stderr,
	})
	if err != nil {
		t.Fatalf("start Xephyr: %v\n%s", err, stderr.String())
	}
	w.srv = srv
	t.Cleanup(func() {
		_ = srv.Close()
		if t.Failed() {
			t.Logf("Xephyr stderr:\n%s", stderr.String())
		}
	})
	// Hold a connection so that -terminate does not end the server
	// between the test's clients.
	nested, err := xephyr.Dial(ctx, srv.Display, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nested.Close)
	w.xauth = filepath.Join(dir, "client.xauth")
	if err := xauth.WriteFile(w.xauth, []xauth.Entry{xauth.WildEntry(srv.Display, c)}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	time.AfterFunc(10*time.Second, func() { close(done) })
	if _, err := f.Child(done); err != nil {
		t.Fatal(err)
	}
}

// nested runs an X client against the nested display, as a guest program
// would, and returns its output; a failing client is fine (xrandr refuses).
func (w *world) nested(argv ...string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("DISPLAY=:%d", w.srv.Display), "XAUTHORITY=" + w.xauth}
	out, _ := cmd.CombinedOutput()
	return string(out)
}

var currentRE = regexp.MustCompile(`current (\d+) x (\d+)`)

// nestedSize is the nested screen's size as RandR reports it.
func (w *world) nestedSize() (int, int) {
	w.t.Helper()
	out := w.nested("xrandr", "-q")
	m := currentRE.FindStringSubmatch(out)
	if m == nil {
		w.t.Fatalf("xrandr -q: no current size in:\n%s", out)
	}
	var x, y int
	fmt.Sscan(m[1], &x)
	fmt.Sscan(m[2], &y)
	return x, y
}

func (w *world) geometry(win xproto.Window) Geometry {
	w.t.Helper()
	g, err := xproto.GetGeometry(w.host, xproto.Drawable(win)).Reply()
	if err != nil {
		w.t.Fatalf("GetGeometry 0x%x: %v", win, err)
	}
	return Geometry{int(g.X), int(g.Y), int(g.Width), int(g.Height)}
}

// tree returns the top-level windows, and the frame's container's children.
func (w *world) tree() (top, inside []xproto.Window) {
	w.t.Helper()
	root := xproto.Setup(w.host).DefaultScreen(w.host).Root
	r, err := xproto.QueryTree(w.host, root).Reply()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range r.Children {
		a, err := xproto.GetWindowAttributes(w.host, c).Reply()
		if err == nil && a.MapState == xproto.MapStateViewable {
			top = append(top, c)
		}
	}
	r, err = xproto.QueryTree(w.host, xproto.Window(w.frame.Parent())).Reply()
	if err != nil {
		w.t.Fatal(err)
	}
	return top, r.Children
}

func (w *world) shot() *image.RGBA {
	w.t.Helper()
	img, err := xephyr.Screenshot(w.host, 0, 0, 1600, 1200)
	if err != nil {
		w.t.Fatal(err)
	}
	return img
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
	}
}

func rgb(img *image.RGBA, x, y int) [3]uint8 {
	i := img.PixOffset(x, y)
	return [3]uint8{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}
}

// checkFrameVisible checks, on a screenshot of the host, that the frame's
// border shows in its colour on all four sides and that the label strip is
// there, and that the desktop outside a non-fullscreen frame is uncovered.
func (w *world) checkFrameVisible(g Geometry, color [3]uint8, fullscreen bool) {
	w.t.Helper()
	img := w.shot()
	lh := w.frame.LabelHeight()
	points := []struct {
		what string
		x, y int
	}{
		{"left border", g.X + 1, g.Y + g.Height/2},
		{"right border", g.X + g.Width - 2, g.Y + g.Height/2},
		{"bottom border", g.X + g.Width/2, g.Y + g.Height - 2},
		{"label strip, right end", g.X + g.Width - 3, g.Y + lh/2},
		{"label strip, above the text", g.X + g.Width/2, g.Y + 1},
	}
	for _, p := range points {
		if got := rgb(img, p.x, p.y); got != color {
			w.t.Errorf("%s at %d,%d has colour %v, want the frame's %v", p.what, p.x, p.y, got, color)
		}
	}
	if !fullscreen {
		if got := rgb(img, 2, 2); got == color {
			w.t.Errorf("the desktop's corner 2,2 has the frame's colour: the frame covers the screen")
		}
	}
	// The label's text is drawn: the strip holds pixels of another colour.
	var text int
	for x := g.X + Border; x < g.X+Border+200 && x < g.X+g.Width; x++ {
		for y := g.Y; y < g.Y+lh; y++ {
			if rgb(img, x, y) != color {
				text++
			}
		}
	}
	if text < 20 {
		w.t.Errorf("the label strip shows no text (%d pixels of another colour)", text)
	}
}

var red = [3]uint8{0xcc, 0, 0}

// TestGuestCannotGrowWindow: on a 1600x1200 host without a window manager,
// the nested display asks RandR for the host's whole size (xrandr --fb, -s).
// The framed window keeps its size and place, well inside the host screen,
// Xephyr's window stays inside the frame, and the frame stays visible.
func TestGuestCannotGrowWindow(t *testing.T) {
	w := newWorld(t, Options{Title: "[t] test", Instance: "xvmview-t", Label: "[t] guest", Color: "#cc0000", Width: 800, Height: 600})
	fg := w.geometry(xproto.Window(w.frame.Window()))
	maxW, maxH := Bound(1600, 1200, 0, 0)
	if fg.Width > maxW || fg.Height > maxH || fg.X < 0 || fg.Y < 0 {
		t.Fatalf("frame %+v is not within %dx%d", fg, maxW, maxH)
	}
	if gw, gh := w.nestedSize(); gw != 800 || gh != 600 {
		t.Fatalf("nested screen %dx%d, want 800x600", gw, gh)
	}
	w.checkFrameVisible(fg, red, false)

	for _, argv := range [][]string{
		{"xrandr", "--fb", "1600x1200"},
		{"xrandr", "-s", "1600x1200"},
		{"xrandr", "--fb", "3200x2400"},
		{"xrandr", "-s", "0"},
	} {
		out := w.nested(argv...)
		t.Logf("%s: %s", strings.Join(argv, " "), strings.TrimSpace(out))
		// Let Xephyr act on it before looking: a round trip through the
		// nested display and then through the host display.
		w.nestedSize()
		xproto.GetInputFocus(w.host).Reply()
		if got := w.geometry(xproto.Window(w.frame.Window())); got != fg {
			t.Errorf("after %s the frame is %+v, was %+v", strings.Join(argv, " "), got, fg)
		}
		top, inside := w.tree()
		if len(top) != 1 || uint32(top[0]) != w.frame.Window() {
			t.Errorf("after %s the host shows top-level windows %v, want only the frame 0x%x", strings.Join(argv, " "), top, w.frame.Window())
		}
		for _, c := range inside {
			if g := w.geometry(c); g.Width > fg.Width-2*Border || g.Height > fg.Height-w.frame.LabelHeight()-Border {
				t.Errorf("after %s Xephyr's window is %+v, larger than the frame's inside", strings.Join(argv, " "), g)
			}
		}
		if gw, gh := w.nestedSize(); gw != 800 || gh != 600 {
			t.Errorf("after %s the nested screen is %dx%d, want 800x600", strings.Join(argv, " "), gw, gh)
		}
	}
	w.checkFrameVisible(fg, red, false)
}

// TestFramePutsXephyrBack: whatever changes Xephyr's window (a later
// Xephyr that let RandR resize it), the frame puts it back to its inside.
func TestFramePutsXephyrBack(t *testing.T) {
	w := newWorld(t, Options{Title: "[t] test", Instance: "xvmview-t", Label: "[t] guest", Color: "#cc0000", Width: 640, Height: 480})
	_, inside := w.tree()
	if len(inside) != 1 {
		t.Fatalf("the frame holds %d windows, want Xephyr's one", len(inside))
	}
	child := inside[0]
	want := w.geometry(child)
	if err := xproto.ConfigureWindowChecked(w.host, child, xproto.ConfigWindowX|xproto.ConfigWindowY|xproto.ConfigWindowWidth|xproto.ConfigWindowHeight,
		[]uint32{0xffffff9c /* -100 */, 0, 1600, 1200}).Check(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Xephyr's window back at its place and size", func() bool { return w.geometry(child) == want })
	eventually(t, "the nested screen back at 640x480", func() bool { gw, gh := w.nestedSize(); return gw == 640 && gh == 480 })
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.notices) == 0 || !strings.Contains(w.notices[0], "kept at 640x480") {
		t.Errorf("notices %q, want one saying the window was kept at 640x480", w.notices)
	}
}

// TestFrameFollowsUserResize: the user (or their window manager) resizes the
// frame; Xephyr's window and the nested screen follow.
func TestFrameFollowsUserResize(t *testing.T) {
	w := newWorld(t, Options{Title: "[t] test", Instance: "xvmview-t", Label: "[t] guest", Color: "#cc0000", Width: 800, Height: 600})
	fw := xproto.Window(w.frame.Window())
	g := w.geometry(fw)
	chromeW, chromeH := g.Width-800, g.Height-600
	if err := xproto.ConfigureWindowChecked(w.host, fw, xproto.ConfigWindowWidth|xproto.ConfigWindowHeight,
		[]uint32{uint32(1000 + chromeW), uint32(700 + chromeH)}).Check(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the nested screen at 1000x700", func() bool { gw, gh := w.nestedSize(); return gw == 1000 && gh == 700 })
	w.checkFrameVisible(w.geometry(fw), red, false)
}

// TestFrameFixedSize: resizeable = false keeps the nested screen's size.
func TestFrameFixedSize(t *testing.T) {
	w := newWorld(t, Options{Title: "[t] test", Instance: "xvmview-t", Label: "[t] guest", Color: "#cc0000", Width: 800, Height: 600, FixedSize: true})
	fw := xproto.Window(w.frame.Window())
	if err := xproto.ConfigureWindowChecked(w.host, fw, xproto.ConfigWindowWidth|xproto.ConfigWindowHeight, []uint32{1200, 900}).Check(); err != nil {
		t.Fatal(err)
	}
	xproto.GetInputFocus(w.host).Reply()
	w.nestedSize()
	if gw, gh := w.nestedSize(); gw != 800 || gh != 600 {
		t.Errorf("nested screen %dx%d after resizing a fixed-size frame, want 800x600", gw, gh)
	}
}

// TestFrameFullscreen: the frame covers the host screen; its border and
// label stay visible around Xephyr's window.
func TestFrameFullscreen(t *testing.T) {
	w := newWorld(t, Options{Title: "[t] test", Instance: "xvmview-t", Label: "[t] guest", Color: "#cc0000", Fullscreen: true})
	g := w.geometry(xproto.Window(w.frame.Window()))
	if g != (Geometry{0, 0, 1600, 1200}) {
		t.Fatalf("fullscreen frame %+v, want the whole 1600x1200 screen", g)
	}
	lh := w.frame.LabelHeight()
	if gw, gh := w.nestedSize(); gw != 1600-2*Border || gh != 1200-lh-Border {
		t.Errorf("nested screen %dx%d, want %dx%d", gw, gh, 1600-2*Border, 1200-lh-Border)
	}
	w.nested("xrandr", "--fb", "1600x1200")
	w.checkFrameVisible(g, red, true)
}

// TestFrameBoundsLargeScreen: a profile screen as large as the host's gets
// a framed window within the bound, and a notice.
func TestFrameBoundsLargeScreen(t *testing.T) {
	w := newWorld(t, Options{Title: "[t] test", Instance: "xvmview-t", Label: "[t] guest", Color: "#cc0000", Width: 1600, Height: 1200})
	g := w.geometry(xproto.Window(w.frame.Window()))
	maxW, maxH := Bound(1600, 1200, 0, 0)
	if g.Width != maxW || g.Height != maxH || g.X != DefaultMargin || g.Y != DefaultMargin {
		t.Errorf("frame %+v, want %dx%d+%d+%d", g, maxW, maxH, DefaultMargin, DefaultMargin)
	}
	w.checkFrameVisible(g, red, false)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.notices) == 0 || !strings.Contains(w.notices[0], "instead of 1600x1200") {
		t.Errorf("notices %q, want one about the smaller nested screen", w.notices)
	}
}

// TestFrameTitleAndClose: the frame carries the window title and WM_CLASS a
// window manager sees, and the close button (WM_DELETE_WINDOW) ends it.
func TestFrameTitleAndClose(t *testing.T) {
	w := newWorld(t, Options{Title: "[t] app on guest", Instance: "xvmview-t", Label: "[t] guest", Color: "dark orange", Width: 640, Height: 480})
	fw := xproto.Window(w.frame.Window())
	get := func(prop xproto.Atom) string {
		r, err := xproto.GetProperty(w.host, false, fw, prop, xproto.GetPropertyTypeAny, 0, 1024).Reply()
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Value)
	}
	if got := get(xproto.AtomWmName); got != "[t] app on guest" {
		t.Errorf("WM_NAME %q", got)
	}
	if got := get(xproto.AtomWmClass); got != "xvmview-t\x00xvmview-t\x00" {
		t.Errorf("WM_CLASS %q", got)
	}
	w.checkFrameVisible(w.geometry(fw), [3]uint8{0xff, 0x8c, 0x00}, false) // rgb.txt: dark orange

	protocols, _ := xproto.InternAtom(w.host, false, 12, "WM_PROTOCOLS").Reply()
	del, _ := xproto.InternAtom(w.host, false, 16, "WM_DELETE_WINDOW").Reply()
	ev := xproto.ClientMessageEvent{Format: 32, Window: fw, Type: protocols.Atom,
		Data: xproto.ClientMessageDataUnionData32New([]uint32{uint32(del.Atom), 0, 0, 0, 0})}
	if err := xproto.SendEventChecked(w.host, false, fw, 0, string(ev.Bytes())).Check(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.frame.Done():
		if w.frame.Err() != ErrClosedByUser {
			t.Errorf("Err() = %v, want ErrClosedByUser", w.frame.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the frame did not report WM_DELETE_WINDOW")
	}
}

func TestNewRefusesUnknownColour(t *testing.T) {
	x := testguest.StartXvfb(t, testguest.XvfbOptions{})
	_, err := New(context.Background(), dialHost(t, x), Options{Color: "no such colour", Width: 100, Height: 100})
	if err == nil || !strings.Contains(err.Error(), `"no such colour"`) {
		t.Errorf("New with an unknown colour: %v", err)
	}
}

// startHostWM runs twm on the host display, placing windows itself
// (RandomPlacement: twm's default waits for a click, holding a server grab).
func startHostWM(t *testing.T, x *testguest.Xvfb) {
	t.Helper()
	need(t, "twm")
	rc := filepath.Join(t.TempDir(), "twmrc")
	if err := os.WriteFile(rc, []byte("RandomPlacement\nNoGrabServer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("twm", "-f", rc)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + x.Display, "LC_ALL=C"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := dialHost(t, x)
	defer c.Close()
	root := xproto.Setup(c).DefaultScreen(c).Root
	eventually(t, "twm manages the display", func() bool {
		a, err := xproto.GetWindowAttributes(c, root).Reply()
		return err == nil && a.AllEventMasks&xproto.EventMaskSubstructureRedirect != 0
	})
}

// testKeysGrabbed: Ctrl+Shift+C typed on the host display over the frame
// reaches the frame's Keys and never the nested display, where a window
// covering the screen listens for key presses; a plain 'c' does reach it.
func testKeysGrabbed(t *testing.T, withWM bool) {
	need(t, "Xephyr", "xrandr")
	x := testguest.StartXvfb(t, testguest.XvfbOptions{Screen: "1600x1200x24"})
	if withWM {
		startHostWM(t, x)
	}
	w := &world{t: t, x: x}
	w.host = dialHost(t, x)
	t.Cleanup(w.host.Close)
	if err := xtest.Init(w.host); err != nil {
		t.Fatal(err)
	}
	o := Options{Title: "[t] keys", Instance: "xvmview-t", Label: "[t] guest", Color: "#cc0000", Width: 640, Height: 480,
		Keys: []Key{{Name: "copy", Mods: xproto.ModMaskControl | xproto.ModMaskShift, Keysym: 'c'}}}
	w.startIn(o)
	if withWM {
		eventually(t, "twm reparents the frame", func() bool {
			r, err := xproto.QueryTree(w.host, xproto.Window(w.frame.Window())).Reply()
			return err == nil && r.Parent != xproto.Setup(w.host).DefaultScreen(w.host).Root
		})
	}

	// A guest window over the whole nested screen, listening for keys.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	guest, err := xephyr.Dial(ctx, w.srv.Display, w.cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	gs := xproto.Setup(guest).DefaultScreen(guest)
	gw, _ := xproto.NewWindowId(guest)
	if err := xproto.CreateWindowChecked(guest, gs.RootDepth, gw, gs.Root, 0, 0, gs.WidthInPixels, gs.HeightInPixels, 0,
		xproto.WindowClassInputOutput, gs.RootVisual, xproto.CwEventMask, []uint32{xproto.EventMaskKeyPress}).Check(); err != nil {
		t.Fatal(err)
	}
	xproto.MapWindow(guest, gw)
	xproto.SetInputFocus(guest, xproto.InputFocusPointerRoot, gw, xproto.TimeCurrentTime)
	if _, err := xproto.GetInputFocus(guest).Reply(); err != nil {
		t.Fatal(err)
	}
	gotKeys := make(chan byte, 64)
	go func() {
		for {
			ev, xerr := guest.WaitForEvent()
			if ev == nil && xerr == nil {
				return
			}
			if k, ok := ev.(xproto.KeyPressEvent); ok {
				gotKeys <- byte(k.Detail)
			}
		}
	}()

	h := w.host
	root := xproto.Setup(h).DefaultScreen(h).Root
	g := w.geometry(xproto.Window(w.frame.Parent()))
	abs, err := xproto.TranslateCoordinates(h, xproto.Window(w.frame.Parent()), root, int16(g.Width/2), int16(g.Height/2)).Reply()
	if err != nil {
		t.Fatal(err)
	}
	if err := xproto.WarpPointerChecked(h, 0, root, 0, 0, 0, 0, abs.DstX, abs.DstY).Check(); err != nil {
		t.Fatal(err)
	}
	ctrl, shift, c := testguest.Keycode(t, h, testguest.ControlL), testguest.Keycode(t, h, testguest.ShiftL), testguest.Keycode(t, h, 'c')
	press := func(codes ...byte) {
		for _, k := range codes {
			xtest.FakeInput(h, xproto.KeyPress, k, 0, root, 0, 0, 0)
		}
		for i := len(codes) - 1; i >= 0; i-- {
			xtest.FakeInput(h, xproto.KeyRelease, codes[i], 0, root, 0, 0, 0)
		}
		xproto.GetInputFocus(h).Reply()
	}
	// A plain c first: the guest gets it (the path works at all).
	press(c)
	if !waitKey(gotKeys, c) {
		t.Fatal("a plain 'c' typed over the frame did not reach the nested display")
	}
	marker := testguest.Keycode(t, h, 'x')
	press(ctrl, shift, c)
	press(marker) // every key event before it has arrived once it does
	seen, ok := waitKeys(gotKeys, marker)
	if !ok {
		t.Fatal("the marker 'x' did not reach the nested display")
	}
	for _, k := range seen {
		if k == c {
			t.Errorf("the nested display saw the 'c' of Ctrl+Shift+C (keys seen: %v)", seen)
		}
	}
	select {
	case name := <-w.frame.Keys():
		if name != "copy" {
			t.Errorf("Keys() = %q, want copy", name)
		}
	case <-time.After(5 * time.Second):
		t.Error("Ctrl+Shift+C over the frame did not reach the frame's Keys")
	}

	// With a mouse button held (a selection still being dragged) the key
	// event's state has the button's bit too: the key still works.
	xtest.FakeInput(h, xproto.ButtonPress, 1, 0, root, 0, 0, 0)
	press(ctrl, shift, c)
	xtest.FakeInput(h, xproto.ButtonRelease, 1, 0, root, 0, 0, 0)
	xproto.GetInputFocus(h).Reply()
	select {
	case name := <-w.frame.Keys():
		if name != "copy" {
			t.Errorf("Keys() = %q, want copy", name)
		}
	case <-time.After(5 * time.Second):
		t.Error("Ctrl+Shift+C with a mouse button held did not reach the frame's Keys")
	}
}

// waitKey drains keys until code arrives (true) or 10 s pass.
func waitKey(keys chan byte, code byte) bool {
	_, ok := waitKeys(keys, code)
	return ok
}

// waitKeys returns the keys that came before code, and whether code came
// within 10 s.
func waitKeys(keys chan byte, code byte) ([]byte, bool) {
	var seen []byte
	for deadline := time.After(10 * time.Second); ; {
		select {
		case k := <-keys:
			if k == code {
				return seen, true
			}
			seen = append(seen, k)
		case <-deadline:
			return seen, false
		}
	}
}

func TestKeysGrabbedNoWM(t *testing.T)    { testKeysGrabbed(t, false) }
func TestKeysGrabbedUnderWM(t *testing.T) { testKeysGrabbed(t, true) }

func FuzzParseHex(f *testing.F) {
	for _, s := range []string{"#f00", "#cc0000", "#123456789", "#0000ffff0000", "#", "cc0000", "#+1+1+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, g, b, err := ParseHex(s)
		if err != nil {
			return
		}
		n := (len(s) - 1) / 3
		if s[0] != '#' || (len(s)-1)%3 != 0 || n < 1 || n > 4 {
			t.Errorf("ParseHex(%q) = %x %x %x, accepted a malformed colour", s, r, g, b)
		}
	})
}

// TestLabelHiDPI: on a 192 dpi screen the label strip uses a larger font.
func TestLabelHiDPI(t *testing.T) {
	heights := map[bool]int{}
	for _, hi := range []bool{false, true} {
		o := testguest.XvfbOptions{Screen: "1600x1200x24"}
		if hi {
			o.Args = []string{"-dpi", "192"}
		}
		x := testguest.StartXvfb(t, o)
		f, err := New(context.Background(), dialHost(t, x), Options{Label: "[t] guest", Color: "#cc0000", Width: 400, Height: 300})
		if err != nil {
			t.Fatal(err)
		}
		heights[hi] = f.LabelHeight()
		f.Close()
	}
	if heights[true] <= heights[false] {
		t.Errorf("label strip %d px at 192 dpi, %d px at the default: want it larger", heights[true], heights[false])
	}
}

// TestNewUnderServerGrab: New on a host display that another client holds
// grabbed returns when its ctx ends.
func TestNewUnderServerGrab(t *testing.T) {
	x := testguest.StartXvfb(t, testguest.XvfbOptions{})
	c := dialHost(t, x)
	g := dialHost(t, x)
	defer g.Close()
	if err := xproto.GrabServerChecked(g).Check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := New(ctx, c, Options{Label: "[t] guest", Color: "#cc0000", Width: 400, Height: 300})
		res <- err
	}()
	select {
	case err := <-res:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("New under a grab: %v, want the deadline's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("New did not return while another client held the server grabbed")
	}
}
