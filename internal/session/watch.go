package session

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/xephyr"
)

// screenshotDelay lets the first window draw before the screenshot is taken.
const screenshotDelay = 700 * time.Millisecond

// watchMaps follows top-level windows on the nested display and reports the
// first one that maps (the app's, usually framed by the window manager). With
// Options.Screenshot set it saves a PNG of the whole display shortly after.
func (r *runner) watchMaps() {
	if r.o.Progress == nil && r.o.Screenshot == "" {
		return
	}
	root := xproto.Setup(r.conn).DefaultScreen(r.conn).Root
	// Unchecked: no reply to wait for (a server grab would hold it up); an
	// error comes as the first "event".
	xproto.ChangeWindowAttributes(r.conn, root, xproto.CwEventMask, []uint32{xproto.EventMaskSubstructureNotify})
	conn := r.conn
	go func() {
		for {
			ev, xerr := conn.WaitForEvent()
			if ev == nil && xerr == nil {
				return // connection closed
			}
			if xerr != nil {
				r.notice("cannot watch the nested display's windows: %v", xerr)
				continue
			}
			if m, ok := ev.(xproto.MapNotifyEvent); ok && !m.OverrideRedirect {
				r.phase("first window mapped")
				if r.o.Screenshot != "" {
					time.AfterFunc(screenshotDelay, r.screenshot)
				}
				// Drain the rest so xgb's event queue does not grow.
				for {
					if ev, xerr := conn.WaitForEvent(); ev == nil && xerr == nil {
						return
					}
				}
			}
		}
	}()
}

// screenshotTimeout bounds the wait for the image: a client that holds a
// server grab (twm placing a window interactively) stalls every other client.
const screenshotTimeout = 5 * time.Second

func (r *runner) screenshot() {
	s := xproto.Setup(r.conn).DefaultScreen(r.conn)
	type shot struct {
		img image.Image
		err error
	}
	c := make(chan shot, 1)
	go func() {
		img, err := xephyr.Screenshot(r.conn, 0, 0, int(s.WidthInPixels), int(s.HeightInPixels))
		c <- shot{img, err}
	}()
	var img image.Image
	select {
	case sh := <-c:
		if sh.err != nil {
			r.notice("screenshot: %v", sh.err)
			return
		}
		img = sh.img
	case <-time.After(screenshotTimeout):
		r.notice("screenshot: no image after %s (does a client hold a server grab?)", screenshotTimeout)
		return
	}
	if err := writePNG(r.o.Screenshot, img); err != nil {
		r.notice("screenshot: %v", err)
		return
	}
	r.phase("screenshot saved to " + r.o.Screenshot)
}

// writePNG saves img as a PNG file (0600: it shows the guest's screen),
// written to a fresh temp file beside it (never through a planted name) and
// renamed.
func writePNG(path string, img image.Image) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".xvmview-shot-*.png")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := png.Encode(f, img); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
