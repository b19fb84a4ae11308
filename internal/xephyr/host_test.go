package xephyr

import (
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

func TestQueryHost(t *testing.T) {
	host := startXvfb(t, "1024x768x24", true)
	ctx := testCtx(t)

	facts, err := QueryHost(ctx, host.Display, host.Xauthority)
	if err != nil {
		t.Fatalf("QueryHost: %v", err)
	}
	if facts.Width != 1024 || facts.Height != 768 || facts.WidthMM <= 0 || facts.HeightMM <= 0 {
		t.Errorf("QueryHost = %+v, want 1024x768 with a physical size", facts)
	}
	if facts.DPI() <= 0 {
		t.Errorf("DPI() = %d", facts.DPI())
	}
	if facts.XKB.Rules == "" || facts.XKB.Layout == "" {
		t.Errorf("XKB = %+v, want the server's default names", facts.XKB)
	}

	setxkbmap := testguest.NeedProgram(t, "setxkbmap", "x11-xkb-utils")
	cmd := exec.CommandContext(ctx, setxkbmap, "-display", host.Display, "de", "nodeadkeys")
	cmd.Env = host.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("setxkbmap: %v\n%s", err, out)
	}
	facts, err = QueryHost(ctx, "unix"+host.Display+".0", host.Xauthority)
	if err != nil {
		t.Fatalf("QueryHost after setxkbmap: %v", err)
	}
	if facts.XKB.Layout != "de" || facts.XKB.Variant != "nodeadkeys" {
		t.Errorf("XKB after setxkbmap de nodeadkeys = %+v", facts.XKB)
	}
}

func TestQueryHostRefused(t *testing.T) {
	host := startXvfb(t, "800x600x24", true)
	ctx := testCtx(t)
	hn, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	decoyOnly := writeAuth(t, "decoy", xauth.LocalEntry(hn, host.Num+1, newCookie(t)))
	wrongCookie := writeAuth(t, "wrong", wildEntry(newCookie(t)))
	for name, xauthority := range map[string]string{
		"no Xauthority":             "",
		"missing Xauthority file":   decoyOnly + ".missing",
		"entry for another display": decoyOnly,
		"wrong cookie":              wrongCookie,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := QueryHost(ctx, host.Display, xauthority)
			if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), host.Display) {
				t.Fatalf("QueryHost = %v, want a refusal naming %s", err, host.Display)
			}
		})
	}
	if _, err := QueryHost(ctx, "nonsense", ""); err == nil {
		t.Error("QueryHost accepted a bad display string")
	}
}

// QueryHost without a cookie works on a display with host-based access.
func TestQueryHostNoAuth(t *testing.T) {
	open := startXvfb(t, "640x480x24", false)
	facts, err := QueryHost(testCtx(t), open.Display, "")
	if err != nil {
		t.Fatalf("QueryHost: %v", err)
	}
	if facts.Width != 640 || facts.Height != 480 {
		t.Errorf("QueryHost = %+v, want 640x480", facts)
	}
}

// A client draws a window through the nested server; Screenshot must show
// its pixels at the right place.
func TestScreenshot(t *testing.T) {
	host := startXvfb(t, "800x600x24", true)
	s, cookie := startXephyr(t, host, Options{Screen: "320x240x24"})
	ctx := testCtx(t)
	conn, err := Dial(ctx, s.Display, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	screen := xproto.Setup(conn).DefaultScreen(conn)

	const (
		red  = 0xff0000
		blue = 0x0000ff
	)
	wid, err := xproto.NewWindowId(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := xproto.CreateWindowChecked(conn, screen.RootDepth, wid, screen.Root, 10, 20, 100, 80, 0,
		xproto.WindowClassInputOutput, screen.RootVisual,
		xproto.CwBackPixel|xproto.CwOverrideRedirect|xproto.CwEventMask,
		[]uint32{red, 1, xproto.EventMaskExposure}).Check(); err != nil {
		t.Fatalf("CreateWindow: %v", err)
	}
	if err := xproto.MapWindowChecked(conn, wid).Check(); err != nil {
		t.Fatalf("MapWindow: %v", err)
	}
	for {
		ev, xerr := conn.WaitForEvent()
		if ev == nil && xerr == nil {
			t.Fatal("connection closed while waiting for Expose")
		}
		if xerr != nil {
			t.Fatalf("X error: %v", xerr)
		}
		if _, ok := ev.(xproto.ExposeEvent); ok {
			break
		}
	}
	gc, err := xproto.NewGcontextId(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := xproto.CreateGCChecked(conn, gc, xproto.Drawable(wid), xproto.GcForeground, []uint32{blue}).Check(); err != nil {
		t.Fatalf("CreateGC: %v", err)
	}
	// Checked: the reply orders it before the GetImage below.
	if err := xproto.PolyFillRectangleChecked(conn, xproto.Drawable(wid), gc,
		[]xproto.Rectangle{{X: 30, Y: 30, Width: 20, Height: 10}}).Check(); err != nil {
		t.Fatalf("PolyFillRectangle: %v", err)
	}

	img, err := Screenshot(conn, 0, 0, 320, 240)
	if err != nil {
		t.Fatalf("Screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 240 {
		t.Fatalf("bounds %v", b)
	}
	want := map[[2]int]color.RGBA{
		{10, 20}:  {0xff, 0, 0, 0xff}, // window's top-left corner
		{109, 99}: {0xff, 0, 0, 0xff}, // bottom-right corner
		{40, 50}:  {0, 0, 0xff, 0xff}, // rectangle at window (30,30)
		{59, 59}:  {0, 0, 0xff, 0xff},
		{60, 60}:  {0xff, 0, 0, 0xff}, // just outside the rectangle
	}
	for p, c := range want {
		if got := img.RGBAAt(p[0], p[1]); got != c {
			t.Errorf("pixel %v = %v, want %v", p, got, c)
		}
	}
	for _, p := range [][2]int{{9, 19}, {110, 100}, {300, 200}} {
		if got := img.RGBAAt(p[0], p[1]); got == want[[2]int{10, 20}] {
			t.Errorf("pixel %v outside the window is the window's red", p)
		}
	}

	sub, err := Screenshot(conn, 40, 50, 2, 2)
	if err != nil {
		t.Fatalf("Screenshot of a sub-rectangle: %v", err)
	}
	if got := sub.RGBAAt(0, 0); got != (color.RGBA{0, 0, 0xff, 0xff}) {
		t.Errorf("sub-rectangle pixel = %v, want blue", got)
	}
	if _, err := Screenshot(conn, 300, 200, 100, 100); err == nil {
		t.Error("Screenshot outside the screen succeeded")
	}
	if _, err := Screenshot(conn, 0, 0, 0, 10); err == nil {
		t.Error("Screenshot of zero width succeeded")
	}
}

func TestLookupCookie(t *testing.T) {
	hn, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	inet, wild2, local0 := newCookie(t), newCookie(t), newCookie(t)
	inetEntry := xauth.Entry{Family: xauth.FamilyInternet, Address: []byte{10, 0, 0, 5}, Number: "1", Name: xauth.CookieName, Data: inet.Bytes()}
	other := xauth.Entry{Family: xauth.FamilyLocal, Address: []byte(hn), Number: "2", Name: "XDM-AUTHORIZATION-1", Data: make([]byte, 16)}
	path := writeAuth(t, "xa", inetEntry, other, xauth.WildEntry(2, wild2), xauth.LocalEntry(hn, 0, local0))
	tests := []struct {
		display string
		want    xauth.Cookie
		found   bool
	}{
		{"10.0.0.5:1", inet, true},
		{"tcp/10.0.0.5:1.0", inet, true},
		{":0", local0, true},
		{"localhost:0", local0, true},
		{":2", wild2, true}, // the XDM entry for :2 comes first but has another name
		{"somehost:2", wild2, true},
		{"somehost:1", xauth.Cookie{}, false},
		{"10.0.0.6:1", xauth.Cookie{}, false},
		{":1", xauth.Cookie{}, false},
		{":00", local0, true},                  // xauth stores the number as "0"
		{"127.0.1.1:0", xauth.Cookie{}, false}, // not this machine to libxcb: not the Local entry
	}
	for _, tt := range tests {
		t.Run(tt.display, func(t *testing.T) {
			d, err := parseDisplay(tt.display)
			if err != nil {
				t.Fatal(err)
			}
			got, err := lookupCookie(path, d)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]string{true: tt.want.Hex(), false: ""}[tt.found]; got != want {
				t.Errorf("lookupCookie(%s) found %v, want found=%v", tt.display, got != "", tt.found)
			}
		})
	}
	if got, err := lookupCookie(path+".missing", hostDisplay{local: true, number: "0"}); err != nil || got != "" {
		t.Errorf("missing file: found %v, err %v; want no cookie and no error", got != "", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte{0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lookupCookie(bad, hostDisplay{local: true, number: "0"}); err == nil {
		t.Error("truncated Xauthority file accepted")
	}
}
