package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/testguest"
)

// TestClipboardGuest: a real guest over SSH (the ssh transport) whose app
// owns its CLIPBOARD and polls it every 50 ms. Ctrl+Shift+C on the host
// display brings the guest's text to the host's clipboard; the host's text
// reaches the guest only after Ctrl+Shift+V, and only once.
func TestClipboardGuest(t *testing.T) {
	requireTools(t, "xclip")
	w := newWorld(t, true)
	w.profile("clipg", `host = "e2eguest"
command = ["sh", "-c", "printf 'from the guest' | xclip -i -selection clipboard; while :; do if t=$(xclip -o -selection clipboard 2>/dev/null); then printf '%s\\n' \"$t\" >> \"$HOME/got\"; fi; sleep 0.05; done"]
screen = "640x480"
`)
	l := w.start("run", "clipg")
	w.session(l)
	host := hostDisplay(t, w.x)
	frame := xephyrWindow(t, host, "xvmview-clipg")
	got := func() string { b, _ := w.g.ReadHomeFile("got"); return string(b) }
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(got(), "from the guest"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the guest app does not read its own clipboard: %q", got())
		}
	}

	hostClip := func(stdin string, args ...string) (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "xclip", args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + w.x.Display}
		cmd.Stdin = strings.NewReader(stdin)
		var out strings.Builder
		if args[0] == "-o" {
			cmd.Stdout = &out
		}
		err := cmd.Run()
		return out.String(), err == nil
	}
	if out, ok := hostClip("", "-o", "-selection", "clipboard"); ok {
		t.Fatalf("the host's clipboard holds %q before any key", out)
	}
	clipKey(t, host, frame, 'c')
	var out string
	for deadline := time.Now().Add(10 * time.Second); out != "from the guest"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after Ctrl+Shift+C the host's clipboard holds %q", out)
		}
		out, _ = hostClip("", "-o", "-selection", "clipboard")
	}

	const secret = "host text, pasted once"
	if _, ok := hostClip(secret, "-i", "-selection", "clipboard"); !ok {
		t.Fatal("xclip -i on the host failed")
	}
	time.Sleep(time.Second) // twenty polls
	if strings.Contains(got(), secret) {
		t.Fatalf("the guest read the host's clipboard before Ctrl+Shift+V: %q", got())
	}
	clipKey(t, host, frame, 'v')
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(got(), secret); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after Ctrl+Shift+V the guest read %q", got())
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(got(), secret); n != 1 {
		t.Errorf("the guest read the host's text %d times, want once", n)
	}

	must(t, l.cmd.Process.Signal(syscall.SIGTERM))
	l.wait(t)
}

// clipKey presses Ctrl+Shift+sym on the host display with the pointer over
// the frame.
func clipKey(t *testing.T, h *xgb.Conn, frame xproto.Window, sym xproto.Keysym) {
	t.Helper()
	root := xproto.Setup(h).DefaultScreen(h).Root
	g, err := xproto.GetGeometry(h, xproto.Drawable(frame)).Reply()
	must(t, err)
	must(t, xproto.WarpPointerChecked(h, 0, root, 0, 0, 0, 0, g.X+int16(g.Width/2), g.Y+int16(g.Height/2)).Check())
	testguest.PressKeys(t, h, testguest.ControlL, testguest.ShiftL, sym)
}
