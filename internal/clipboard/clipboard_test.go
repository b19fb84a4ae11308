package clipboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/testguest"
)

func need(t *testing.T, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			testguest.Missing(t, "program "+p, "run scripts/install-deps.sh")
		}
	}
}

type display struct {
	t     *testing.T
	x     *testguest.Xvfb
	owner xproto.Window // the last owner own saw
}

func newDisplay(t *testing.T) *display {
	t.Helper()
	need(t, "xclip")
	return &display{t: t, x: testguest.StartXvfb(t, testguest.XvfbOptions{})}
}

func (d *display) dial() *xgb.Conn {
	d.t.Helper()
	nc, err := net.Dial("unix", fmt.Sprintf("/tmp/.X11-unix/X%d", d.x.Num))
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := xgb.NewConnNetWithCookieHex(nc, strings.Repeat("00", 16))
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

func (d *display) conn() *Conn {
	d.t.Helper()
	k, err := New(context.Background(), d.dial())
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { k.Close(context.Background()) })
	return k
}

// xclip runs xclip on the display; stdin feeds -i. It returns stdout and
// whether xclip succeeded.
func (d *display) xclip(stdin string, args ...string) (string, bool) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "xclip", args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + d.x.Display}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	return out.String(), err == nil
}

// own makes xclip the CLIPBOARD's owner with text; it serves until the
// test ends (or another owner takes over).
func (d *display) own(text string) {
	d.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "xclip", "-i", "-selection", "clipboard", "-quiet")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + d.x.Display}
	cmd.Stdin = strings.NewReader(text)
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	// -quiet keeps xclip in the foreground; it owns the selection once it
	// has read stdin.
	c := d.dial()
	defer c.Close()
	clip, _ := xproto.InternAtom(c, false, 9, "CLIPBOARD").Reply()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := xproto.GetSelectionOwner(c, clip.Atom).Reply()
		if err == nil && r.Owner != xproto.WindowNone && r.Owner != d.owner {
			d.owner = r.Owner
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatal("xclip did not take the CLIPBOARD")
		}
	}
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

func TestReadText(t *testing.T) {
	d := newDisplay(t)
	k := d.conn()
	if _, err := k.Read(ctx(t, 5*time.Second), 1<<10); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Read with no owner: %v, want ErrEmpty", err)
	}
	for _, text := range []string{"https://example.org/?q=1", "héllo wörld ✓\nline two\n", strings.Repeat("x", 200<<10)} {
		d.own(text)
		got, err := k.Read(ctx(t, 5*time.Second), 256<<10)
		if err != nil || got != text {
			t.Errorf("Read of %d bytes: %d bytes, %v", len(text), len(got), err)
		}
	}
}

func TestReadRefusesLarge(t *testing.T) {
	d := newDisplay(t)
	k := d.conn()
	d.own(strings.Repeat("y", 300<<10))
	_, err := k.Read(ctx(t, 5*time.Second), 256<<10)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Max != 256<<10 {
		t.Fatalf("Read of 300 KiB with a 256 KiB cap: %v, want *TooLargeError", err)
	}
}

// hostileOwner takes the CLIPBOARD on its own connection and hands every
// event to answer.
func hostileOwner(t *testing.T, d *display, answer func(c *xgb.Conn, ev xgb.Event)) {
	t.Helper()
	c := d.dial()
	t.Cleanup(c.Close)
	s := xproto.Setup(c).DefaultScreen(c)
	w, _ := xproto.NewWindowId(c)
	if err := xproto.CreateWindowChecked(c, 0, w, s.Root, 0, 0, 1, 1, 0, xproto.WindowClassInputOnly, 0, 0, nil).Check(); err != nil {
		t.Fatal(err)
	}
	clip, _ := xproto.InternAtom(c, false, 9, "CLIPBOARD").Reply()
	if err := xproto.SetSelectionOwnerChecked(c, w, clip.Atom, xproto.TimeCurrentTime).Check(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			ev, xerr := c.WaitForEvent()
			if ev == nil && xerr == nil {
				return
			}
			answer(c, ev)
		}
	}()
}

// TestReadHostileOwner: an owner that never answers, one that starts an
// INCR transfer and stalls, one that sends INCR chunks without end, and one
// that answers with something other than text.
func TestReadHostileOwner(t *testing.T) {
	t.Run("silent", func(t *testing.T) {
		d := newDisplay(t)
		hostileOwner(t, d, func(*xgb.Conn, xgb.Event) {})
		start := time.Now()
		_, err := d.conn().Read(ctx(t, 500*time.Millisecond), 1<<10)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Read from a silent owner: %v, want the deadline", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("Read took %v past its 500 ms deadline", time.Since(start))
		}
	})
	incr := func(endless bool) func(c *xgb.Conn, ev xgb.Event) {
		chunk := bytes.Repeat([]byte("z"), 64<<10)
		var requestor xproto.Window
		var prop xproto.Atom
		return func(c *xgb.Conn, ev xgb.Event) {
			utf8, err := xproto.InternAtom(c, false, 11, "UTF8_STRING").Reply()
			if err != nil {
				return // the test is over
			}
			if p, ok := ev.(xproto.PropertyNotifyEvent); ok && endless && p.State == xproto.PropertyDelete && p.Window == requestor && p.Atom == prop {
				xproto.ChangeProperty(c, xproto.PropModeReplace, requestor, prop, utf8.Atom, 8, uint32(len(chunk)), chunk)
				return
			}
			e, ok := ev.(xproto.SelectionRequestEvent)
			if !ok || e.Target != utf8.Atom {
				return
			}
			requestor, prop = e.Requestor, e.Property
			incrAtom, err := xproto.InternAtom(c, false, 4, "INCR").Reply()
			if err != nil {
				return
			}
			xproto.ChangeWindowAttributes(c, e.Requestor, xproto.CwEventMask, []uint32{xproto.EventMaskPropertyChange})
			size := []byte{0, 0, 0, 0x40} // "1 GiB" in the INCR size hint
			xproto.ChangeProperty(c, xproto.PropModeReplace, e.Requestor, e.Property, incrAtom.Atom, 32, 1, size)
			n := xproto.SelectionNotifyEvent{Time: e.Time, Requestor: e.Requestor, Selection: e.Selection, Target: e.Target, Property: e.Property}
			xproto.SendEvent(c, false, e.Requestor, 0, string(n.Bytes()))
			// Stalling: never a chunk. Endless: a chunk each time the
			// requestor deletes the property.
		}
	}
	t.Run("incr stalls", func(t *testing.T) {
		d := newDisplay(t)
		hostileOwner(t, d, incr(false))
		_, err := d.conn().Read(ctx(t, 500*time.Millisecond), 256<<10)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Read from a stalling INCR owner: %v, want the deadline", err)
		}
	})
	t.Run("incr without end", func(t *testing.T) {
		d := newDisplay(t)
		hostileOwner(t, d, incr(true))
		_, err := d.conn().Read(ctx(t, 10*time.Second), 256<<10)
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.Size > 256<<10+64<<10 {
			t.Errorf("Read from an endless INCR owner: %v, want *TooLargeError after at most one chunk past the cap", err)
		}
	})
	t.Run("not text", func(t *testing.T) {
		d := newDisplay(t)
		hostileOwner(t, d, func(c *xgb.Conn, ev xgb.Event) {
			e, ok := ev.(xproto.SelectionRequestEvent)
			if !ok {
				return
			}
			xproto.ChangeProperty(c, xproto.PropModeReplace, e.Requestor, e.Property, xproto.AtomBitmap, 32, 1, []byte{1, 0, 0, 0})
			n := xproto.SelectionNotifyEvent{Time: e.Time, Requestor: e.Requestor, Selection: e.Selection, Target: e.Target, Property: e.Property}
			xproto.SendEvent(c, false, e.Requestor, 0, string(n.Bytes()))
		})
		if _, err := d.conn().Read(ctx(t, 5*time.Second), 1<<10); !errors.Is(err, ErrEmpty) {
			t.Errorf("Read of a BITMAP: %v, want ErrEmpty", err)
		}
	})
}

// TestOfferOnce: an offer for one paste serves one data transfer and is
// withdrawn; PRIMARY is never set.
func TestOfferOnce(t *testing.T) {
	d := newDisplay(t)
	k := d.conn()
	ended := make(chan Ended, 1)
	if err := k.Offer(ctx(t, 5*time.Second), "pasted ✓", 1, 30*time.Second, func(e Ended) { ended <- e }); err != nil {
		t.Fatal(err)
	}
	if out, ok := d.xclip("", "-o", "-selection", "primary"); ok {
		t.Errorf("PRIMARY holds %q", out)
	}
	if out, ok := d.xclip("", "-o", "-selection", "clipboard"); !ok || out != "pasted ✓" {
		t.Errorf("first paste: %q, %v", out, ok)
	}
	select {
	case e := <-ended:
		if e.Reason != "taken" || e.Served != 1 {
			t.Errorf("offer ended %+v, want taken after 1", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the offer did not end after its one paste")
	}
	if out, ok := d.xclip("", "-o", "-selection", "clipboard"); ok {
		t.Errorf("second paste got %q, want nothing", out)
	}
}

func TestOfferTimeoutAndClose(t *testing.T) {
	d := newDisplay(t)
	k := d.conn()
	ended := make(chan Ended, 1)
	if err := k.Offer(ctx(t, 5*time.Second), "soon gone", 1, 200*time.Millisecond, func(e Ended) { ended <- e }); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ended:
		if e.Reason != "timeout" || e.Served != 0 {
			t.Errorf("offer ended %+v, want a timeout", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the offer did not time out")
	}
	if out, ok := d.xclip("", "-o", "-selection", "clipboard"); ok {
		t.Errorf("after the timeout the clipboard holds %q", out)
	}

	if err := k.Offer(ctx(t, 5*time.Second), "many times", 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if out, ok := d.xclip("", "-o", "-selection", "clipboard"); !ok || out != "many times" {
			t.Errorf("paste %d: %q, %v", i, out, ok)
		}
	}
	// A large text goes across in appended chunks.
	big := strings.Repeat("0123456789", 25<<10)
	if err := k.Offer(ctx(t, 5*time.Second), big, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if out, ok := d.xclip("", "-o", "-selection", "clipboard"); !ok || out != big {
		t.Errorf("paste of %d bytes: %d bytes, %v", len(big), len(out), ok)
	}
	k.Close(ctx(t, 10*time.Second))
	if out, ok := d.xclip("", "-o", "-selection", "clipboard"); ok {
		t.Errorf("after Close the clipboard holds %q", out)
	}
}

func TestToText(t *testing.T) {
	for _, tt := range []struct {
		in     string
		latin1 bool
		want   string
	}{
		{"plain", false, "plain"},
		{"caf\xe9", true, "café"},
		{"bad \xff\xfe utf8", false, "bad \ufffd utf8"},
		{"nul\x00byte", false, "nulbyte"},
	} {
		if got := toText([]byte(tt.in), tt.latin1); got != tt.want {
			t.Errorf("toText(%q, %v) = %q, want %q", tt.in, tt.latin1, got, tt.want)
		}
	}
}

// TestCloseUnderServerGrab: another client of the display holds the server
// grabbed (any guest program on the nested display may) and the server
// answers nobody else: Close returns when its ctx ends instead of waiting
// for the grab to end, and the connection ends once the grab does.
func TestCloseUnderServerGrab(t *testing.T) {
	d := newDisplay(t)
	k := d.conn()
	g := d.dial()
	defer g.Close()
	if err := xproto.GrabServerChecked(g).Check(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { k.Close(ctx(t, 500*time.Millisecond)); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while another client held the server grabbed")
	}
	if err := xproto.UngrabServerChecked(g).Check(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the connection did not end after the grab did")
	}
}

// takeClipboard makes a window of a new connection the CLIPBOARD's owner,
// at CurrentTime, as any other client may; it returns that window.
func (d *display) takeClipboard() xproto.Window {
	d.t.Helper()
	c := d.dial()
	d.t.Cleanup(c.Close)
	clip, err := xproto.InternAtom(c, false, 9, "CLIPBOARD").Reply()
	if err != nil {
		d.t.Fatal(err)
	}
	win, _ := xproto.NewWindowId(c)
	root := xproto.Setup(c).DefaultScreen(c).Root
	if err := xproto.CreateWindowChecked(c, 0, win, root, 0, 0, 1, 1, 0, xproto.WindowClassInputOnly, 0, 0, nil).Check(); err != nil {
		d.t.Fatal(err)
	}
	if err := xproto.SetSelectionOwnerChecked(c, win, clip.Atom, xproto.TimeCurrentTime).Check(); err != nil {
		d.t.Fatal(err)
	}
	return win
}

func (d *display) clipboardOwner() xproto.Window {
	d.t.Helper()
	c := d.dial()
	defer c.Close()
	clip, _ := xproto.InternAtom(c, false, 9, "CLIPBOARD").Reply()
	r, err := xproto.GetSelectionOwner(c, clip.Atom).Reply()
	if err != nil {
		d.t.Fatal(err)
	}
	return r.Owner
}

// TestReleaseKeepsNewerOwner: an offer that ends (here by its timeout) just
// as another client takes the CLIPBOARD, before its SelectionClear is seen,
// leaves that client's selection alone.
func TestReleaseKeepsNewerOwner(t *testing.T) {
	d := newDisplay(t)
	k := d.conn()
	var newer xproto.Window
	k.beforeRelease = func() { newer = d.takeClipboard() }
	ended := make(chan Ended, 1)
	if err := k.Offer(ctx(t, 5*time.Second), "mine", 0, 100*time.Millisecond, func(e Ended) { ended <- e }); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ended:
		if e.Reason != "timeout" {
			t.Fatalf("offer ended %+v, want timeout", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the offer did not time out")
	}
	if got := d.clipboardOwner(); got != newer {
		t.Errorf("after the offer's release the CLIPBOARD owner is 0x%x, want the newer owner 0x%x", got, newer)
	}
}

// TestStaleClearKeepsOffer: a SelectionClear older than the current offer
// (the loss of an earlier one, or one another client sends) does not end it.
func TestStaleClearKeepsOffer(t *testing.T) {
	d := newDisplay(t)
	k := d.conn()
	if err := k.Offer(ctx(t, 5*time.Second), "still here", 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	at := k.offer.time
	k.mu.Unlock()
	c := d.dial()
	defer c.Close()
	ev := xproto.SelectionClearEvent{Time: at - 1000, Owner: k.win, Selection: k.a.clipboard}
	if err := xproto.SendEventChecked(c, false, k.win, 0, string(ev.Bytes())).Check(); err != nil {
		t.Fatal(err)
	}
	// The paste's request reaches k after the stale event.
	if out, ok := d.xclip("", "-o", "-selection", "clipboard"); !ok || out != "still here" {
		t.Errorf("after a stale SelectionClear the paste got %q, %v; want the offer", out, ok)
	}
	// A current one ends it.
	ended := make(chan Ended, 1)
	if err := k.Offer(ctx(t, 5*time.Second), "replaced soon", 0, 0, func(e Ended) { ended <- e }); err != nil {
		t.Fatal(err)
	}
	d.takeClipboard()
	select {
	case e := <-ended:
		if e.Reason != "replaced" {
			t.Errorf("offer ended %+v, want replaced", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the offer did not end when another client took the CLIPBOARD")
	}
}

// TestNewUnderServerGrab: New on a display that another client holds
// grabbed returns when its ctx ends.
func TestNewUnderServerGrab(t *testing.T) {
	d := newDisplay(t)
	c := d.dial()
	g := d.dial()
	defer g.Close()
	if err := xproto.GrabServerChecked(g).Check(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		k   *Conn
		err error
	}
	res := make(chan result, 1)
	go func() { k, err := New(ctx(t, 500*time.Millisecond), c); res <- result{k, err} }()
	select {
	case r := <-res:
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("New under a grab: %v, want the deadline's error", r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("New did not return while another client held the server grabbed")
	}
}
