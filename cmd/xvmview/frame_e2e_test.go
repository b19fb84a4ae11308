package main

import (
	"strings"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/frame"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// TestGuestCannotGrowWindow is the case end to end: a 1600x1200
// host without a window manager, a guest over SSH that asks RandR for the
// whole host screen (xrandr --fb 1600x1200, xrandr -s 1600x1200). The framed
// window stays within the bound, the only top-level window on the host is
// the frame, and the frame's colour shows on all four edges.
func TestGuestCannotGrowWindow(t *testing.T) {
	requireTools(t, "xrandr")
	w := newWorldWith(t, true, testguest.XvfbOptions{Screen: "1600x1200x24"})
	w.profile("grow", `host = "e2eguest"
command = ["sh", "-c", "xrandr --fb 1600x1200 > \"$HOME/fb\" 2>&1; xrandr -s 1600x1200 >> \"$HOME/fb\" 2>&1; xrandr -q > \"$HOME/q\" 2>&1; touch \"$HOME/done\"; while [ ! -e \"$HOME/stop\" ]; do sleep 0.1; done"]
screen = "800x600"
color = "#cc0000"
`)
	l := w.start("run", "grow")
	s, _ := w.session(l)
	host := hostDisplay(t, w.x)
	win := xephyrWindow(t, host, "xvmview-grow")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := w.g.ReadHomeFile("done"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the guest app did not run xrandr")
		}
	}
	fb, _ := w.g.ReadHomeFile("fb")
	q, _ := w.g.ReadHomeFile("q")
	t.Logf("guest xrandr: %s", strings.TrimSpace(string(fb)))
	if !strings.Contains(string(q), "current 800 x 600") {
		t.Errorf("the nested screen after the guest's xrandr: %s", q)
	}
	// A round trip on the host after the guest's requests went through.
	_, err := xproto.GetInputFocus(host).Reply()
	must(t, err)

	g, err := xproto.GetGeometry(host, xproto.Drawable(win)).Reply()
	must(t, err)
	maxW, maxH := frame.Bound(1600, 1200, 0, 0)
	if int(g.Width) > maxW || int(g.Height) > maxH || g.X <= 0 || g.Y <= 0 {
		t.Errorf("the framed window is %dx%d+%d+%d; want within %dx%d, off the screen's corner", g.Width, g.Height, g.X, g.Y, maxW, maxH)
	}
	root := xproto.Setup(host).DefaultScreen(host).Root
	tree, err := xproto.QueryTree(host, root).Reply()
	must(t, err)
	for _, c := range tree.Children {
		a, err := xproto.GetWindowAttributes(host, c).Reply()
		if err == nil && a.MapState == xproto.MapStateViewable && c != win {
			cg, _ := xproto.GetGeometry(host, xproto.Drawable(c)).Reply()
			t.Errorf("another top-level window 0x%x (%+v) shows on the host", c, cg)
		}
	}
	img, err := xephyr.Screenshot(host, 0, 0, 1600, 1200)
	must(t, err)
	red := [3]uint8{0xcc, 0, 0}
	x0, y0, x1, y1 := int(g.X), int(g.Y), int(g.X)+int(g.Width)-1, int(g.Y)+int(g.Height)-1
	for _, p := range []struct {
		what string
		x, y int
	}{
		{"top", (x0 + x1) / 2, y0 + 1}, {"left", x0 + 1, (y0 + y1) / 2},
		{"right", x1 - 1, (y0 + y1) / 2}, {"bottom", (x0 + x1) / 2, y1 - 1},
	} {
		i := img.PixOffset(p.x, p.y)
		if got := [3]uint8{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}; got != red {
			t.Errorf("the frame's %s edge at %d,%d is %v, want %v", p.what, p.x, p.y, got, red)
		}
	}

	if out, err := w.guestRun(`touch "$HOME/stop"`, ""); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st := l.wait(t); st != 0 {
		t.Errorf("exit status %d; stderr:\n%s", st, l.stderr.String())
	}
	w.checkGone(s)
}
