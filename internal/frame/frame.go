// Package frame draws the trust frame: a window on the HOST display, owned by
// the launcher, that holds the nested display's Xephyr window as a child
// (Xephyr -parent) and shows around it a border and a label strip in the
// profile's colour. The guest cannot draw over the frame or remove it: the
// frame is the launcher's window on the host, and Xephyr's window inside it
// is clipped to the area the frame leaves it.
//
// The frame decides the size of the nested window. It follows the user's
// resizes of the frame (it resizes Xephyr's window, and Xephyr resizes the
// nested screen to match), and puts Xephyr's window back to the frame's
// inner size whenever anything else changes it. Xephyr 21.1 run with -parent
// already refuses RandR resizes asked for from the nested display (the
// screen's size range is its current size), so the guest cannot grow the
// window; the frame's check holds even if a later Xephyr allowed it.
//
// The frame also grabs keys on the host display (for the clipboard) so that
// the nested display never sees them, and reports them on Keys.
//
// Everything the frame shows comes from the caller (profile and host-side
// names), never from the guest.
package frame

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
)

// Layout of the frame around the nested window, in pixels.
const (
	Border = 4 // left, right and bottom
	// DefaultMargin is how much of the host screen, on each side, a framed
	// window leaves uncovered by default (not fullscreen).
	DefaultMargin = 32
	// MinMargin is the least it leaves whatever the caller asks.
	MinMargin = 8
	minInner  = 64 // the nested window's smallest side
)

// Key is a key combination the frame grabs on the host display.
type Key struct {
	Name   string // reported on Keys, e.g. "copy"
	Mods   uint16 // xproto.ModMask* (Shift, Control, 1 = Alt, 4 = Super)
	Keysym uint32 // e.g. 'c' (0x63), or 0xffbe for F1
}

// Options configure a frame.
type Options struct {
	Title    string // WM_NAME and _NET_WM_NAME, e.g. "[web] firefox on web-domu"
	Instance string // WM_CLASS instance, e.g. "xvmview-web"
	Class    string // WM_CLASS class; "" = Instance
	Label    string // the label strip's text; bytes outside printable ASCII are shown as '?'
	// Color is the frame's colour: "#rgb", "#rrggbb" (up to 4 hex digits
	// per channel) or a colour name the host X server knows ("dark orange").
	Color string
	// Width, Height are the nested screen's wished size; the frame adds its
	// border and label, and shrinks the nested size to stay within Max.
	Width, Height int
	// MaxWidth, MaxHeight bound the framed window (not fullscreen); 0 =
	// the host screen less DefaultMargin on each side. Never more than the
	// host screen less MinMargin on each side.
	MaxWidth, MaxHeight int
	Fullscreen          bool // the frame covers the host screen; the border and label stay
	FixedSize           bool // the nested window keeps its first size when the frame is resized
	Keys                []Key
	// Notice receives one-line warnings for the user (a refused resize, a
	// key that could not be grabbed); nil drops them.
	Notice func(string)
	// Info receives one-line facts for the session log (the nested screen
	// made smaller to fit the bound); nil drops them.
	Info func(string)
}

// Frame is a frame window on the host display. Its methods are safe for
// concurrent use.
type Frame struct {
	conn      *xgb.Conn
	screen    *xproto.ScreenInfo
	win       xproto.Window // the top-level frame
	box       xproto.Window // the container: Xephyr's -parent
	gc        xproto.Gcontext
	ascent    int
	charW     int // the label font's widest character
	labelH    int
	fixedW    int
	fixedH    int
	fixedSize bool
	label     string
	notice    func(string)
	info      func(string)
	atoms     atoms

	keys   chan string
	keyMap map[keyEvent]string

	mu       sync.Mutex
	w, h     int           // the frame's size
	child    xproto.Window // Xephyr's window, 0 until it appears
	childC   chan struct{} // closed when child is known
	status   string
	refusals int
	done     chan struct{}
	doneErr  error
}

type keyEvent struct {
	code xproto.Keycode
	mods uint16
}

type atoms struct {
	protocols, deleteWindow, netWMName, utf8, netWMState, fullscreen, netWMPid xproto.Atom
}

// Geometry is a window's place and size on the host screen.
type Geometry struct{ X, Y, Width, Height int }

// ErrClosedByUser is Err's value after the user closed the frame with the
// window manager's close button (WM_DELETE_WINDOW).
var ErrClosedByUser = errors.New("the window was closed")

// New creates the frame on the host display's default screen, maps it,
// grabs o.Keys on it and starts following its events. It takes over conn:
// Close closes it (which destroys the frame and releases the grabs).
//
// Errors: the colour is unknown to the host server, or a request failed;
// an error wrapping ctx.Err() when the server did not answer before ctx
// ended (a display another client holds grabbed answers nobody): conn
// closes in the background when the server lets go. A key that cannot be
// grabbed (another client holds it) costs a notice.
func New(ctx context.Context, conn *xgb.Conn, o Options) (*Frame, error) {
	f := &Frame{
		conn: conn, screen: xproto.Setup(conn).DefaultScreen(conn),
		fixedSize: o.FixedSize, notice: o.Notice, info: o.Info, keys: make(chan string, 4),
		keyMap: map[keyEvent]string{}, childC: make(chan struct{}), done: make(chan struct{}),
		label: printable(o.Label),
	}
	if f.notice == nil {
		f.notice = func(string) {}
	}
	if f.info == nil {
		f.info = func(string) {}
	}
	// The round trips cannot be interrupted: on a server that another
	// client holds grabbed they go on in the background, and the
	// connection closes when the server lets go (or with the process).
	res := make(chan error, 1)
	go func() {
		err := f.create(o)
		if err == nil {
			f.grabKeys(o.Keys)
		}
		res <- err
	}()
	select {
	case err := <-res:
		if err != nil {
			conn.Close()
			return nil, err
		}
	case <-ctx.Done():
		go func() { <-res; conn.Close() }()
		return nil, fmt.Errorf("the host display did not answer: %w", ctx.Err())
	}
	go f.loop()
	return f, nil
}

func (f *Frame) create(o Options) error {
	c, s := f.conn, f.screen
	var err error
	for _, a := range []struct {
		dst  *xproto.Atom
		name string
	}{
		{&f.atoms.protocols, "WM_PROTOCOLS"}, {&f.atoms.deleteWindow, "WM_DELETE_WINDOW"},
		{&f.atoms.netWMName, "_NET_WM_NAME"}, {&f.atoms.utf8, "UTF8_STRING"},
		{&f.atoms.netWMState, "_NET_WM_STATE"}, {&f.atoms.fullscreen, "_NET_WM_STATE_FULLSCREEN"},
		{&f.atoms.netWMPid, "_NET_WM_PID"},
	} {
		if *a.dst, err = internAtom(c, a.name); err != nil {
			return err
		}
	}
	bg, err := allocColor(c, s.DefaultColormap, o.Color)
	if err != nil {
		return err
	}
	fg := s.BlackPixel
	if bg.dark {
		fg = s.WhitePixel
	}
	if err := f.openFont(fg, bg.pixel); err != nil {
		return err
	}

	hostW, hostH := int(s.WidthInPixels), int(s.HeightInPixels)
	chromeW, chromeH := 2*Border, f.labelH+Border
	var g Geometry
	if o.Fullscreen {
		g = Geometry{0, 0, hostW, hostH}
	} else {
		maxW, maxH := Bound(hostW, hostH, o.MaxWidth, o.MaxHeight)
		w := min(max(o.Width, minInner)+chromeW, maxW)
		h := min(max(o.Height, minInner)+chromeH, maxH)
		g = Geometry{(hostW - w) / 2, (hostH - h) / 2, w, h}
		if w-chromeW < o.Width || h-chromeH < o.Height {
			f.info(fmt.Sprintf("the nested screen gets %dx%d instead of %dx%d: the framed window may be at most %dx%d on this %dx%d screen",
				w-chromeW, h-chromeH, o.Width, o.Height, maxW, maxH, hostW, hostH))
		}
	}
	f.w, f.h = g.Width, g.Height
	f.fixedW, f.fixedH = max(g.Width-chromeW, 1), max(g.Height-chromeH, 1)

	if f.win, err = xproto.NewWindowId(c); err != nil {
		return fmt.Errorf("frame: %w", err)
	}
	if f.box, err = xproto.NewWindowId(c); err != nil {
		return fmt.Errorf("frame: %w", err)
	}
	err = xproto.CreateWindowChecked(c, s.RootDepth, f.win, s.Root, int16(g.X), int16(g.Y), uint16(g.Width), uint16(g.Height), 0,
		xproto.WindowClassInputOutput, s.RootVisual, xproto.CwBackPixel|xproto.CwEventMask,
		[]uint32{bg.pixel, xproto.EventMaskExposure | xproto.EventMaskStructureNotify | xproto.EventMaskFocusChange}).Check()
	if err != nil {
		return fmt.Errorf("frame: create window: %w", err)
	}
	err = xproto.CreateWindowChecked(c, s.RootDepth, f.box, f.win, Border, int16(f.labelH), uint16(f.fixedW), uint16(f.fixedH), 0,
		xproto.WindowClassInputOutput, s.RootVisual, xproto.CwBackPixel|xproto.CwEventMask,
		[]uint32{s.BlackPixel, xproto.EventMaskSubstructureNotify}).Check()
	if err != nil {
		return fmt.Errorf("frame: create window: %w", err)
	}
	title := printable(o.Title)
	if o.Class == "" {
		o.Class = o.Instance
	}
	class := o.Instance + "\x00" + o.Class + "\x00"
	props := []struct {
		prop, typ xproto.Atom
		format    byte
		data      []byte
	}{
		{xproto.AtomWmName, xproto.AtomString, 8, []byte(title)},
		{f.atoms.netWMName, f.atoms.utf8, 8, []byte(title)},
		{xproto.AtomWmClass, xproto.AtomString, 8, []byte(class)},
		{f.atoms.protocols, xproto.AtomAtom, 32, u32(uint32(f.atoms.deleteWindow))},
		// WM_HINTS: flags InputHint, input True.
		{xproto.AtomWmHints, xproto.AtomWmHints, 32, u32(1, 1, 0, 0, 0, 0, 0, 0, 0)},
		{xproto.AtomWmNormalHints, xproto.AtomWmSizeHints, 32, sizeHints(g, chromeW, chromeH, o.FixedSize)},
	}
	if o.Fullscreen {
		props = append(props, struct {
			prop, typ xproto.Atom
			format    byte
			data      []byte
		}{f.atoms.netWMState, xproto.AtomAtom, 32, u32(uint32(f.atoms.fullscreen))})
	}
	for _, p := range props {
		n := uint32(len(p.data))
		if p.format == 32 {
			n /= 4
		}
		if err := xproto.ChangePropertyChecked(c, xproto.PropModeReplace, f.win, p.prop, p.typ, p.format, n, p.data).Check(); err != nil {
			return fmt.Errorf("frame: set window property: %w", err)
		}
	}
	if err := xproto.MapWindowChecked(c, f.box).Check(); err != nil {
		return fmt.Errorf("frame: map: %w", err)
	}
	if err := xproto.MapWindowChecked(c, f.win).Check(); err != nil {
		return fmt.Errorf("frame: map: %w", err)
	}
	return nil
}

// Bound returns the largest size a framed window may have on a host screen
// of hostW x hostH when the profile asks for at most maxW x maxH (0: no
// wish): DefaultMargin less on each side by default, never more than the
// screen less MinMargin on each side.
func Bound(hostW, hostH, maxW, maxH int) (int, int) {
	w, h := hostW-2*DefaultMargin, hostH-2*DefaultMargin
	if maxW > 0 {
		w = maxW
	}
	if maxH > 0 {
		h = maxH
	}
	w = max(min(w, hostW-2*MinMargin), minInner)
	h = max(min(h, hostH-2*MinMargin), minInner)
	return w, h
}

// sizeHints is WM_NORMAL_HINTS: the program's position and size, a minimum
// size, and for a fixed-size frame the same maximum.
func sizeHints(g Geometry, chromeW, chromeH int, fixed bool) []byte {
	const pPosition, pSize, pMinSize, pMaxSize = 1 << 2, 1 << 3, 1 << 4, 1 << 5
	flags := uint32(pPosition | pSize | pMinSize)
	minW, minH := uint32(minInner+chromeW), uint32(minInner+chromeH)
	maxW, maxH := uint32(0), uint32(0)
	if fixed {
		flags |= pMaxSize
		minW, minH = uint32(g.Width), uint32(g.Height)
		maxW, maxH = minW, minH
	}
	// flags, x, y, width, height, min w/h, max w/h, inc w/h, min/max aspect
	// (4), base w/h, gravity: 18 longs.
	return u32(flags, uint32(g.X), uint32(g.Y), uint32(g.Width), uint32(g.Height), minW, minH, maxW, maxH,
		0, 0, 0, 0, 0, 0, 0, 0, 0)
}

// labelFonts are tried in order, larger ones first on a screen of 150 dpi
// or more; xfonts-base has them all, and every X server has "fixed".
var (
	labelFonts      = []string{"-misc-fixed-bold-r-normal--13-120-75-75-c-70-iso8859-1", "9x15bold", "fixed"}
	labelFontsHiDPI = []string{"-misc-fixed-bold-r-normal--18-120-100-100-c-90-iso8859-1", "-misc-fixed-medium-r-normal--20-200-75-75-c-100-iso8859-1"}
)

// dpi is the screen's horizontal resolution, 0 when unknown.
func dpi(s *xproto.ScreenInfo) int {
	if s.WidthInMillimeters == 0 {
		return 0
	}
	return int(float64(s.WidthInPixels) * 25.4 / float64(s.WidthInMillimeters))
}

func (f *Frame) openFont(fg, bg uint32) error {
	c := f.conn
	fid, err := xproto.NewFontId(c)
	if err != nil {
		return fmt.Errorf("frame: %w", err)
	}
	fonts := labelFonts
	if dpi(f.screen) >= 150 {
		fonts = append(append([]string(nil), labelFontsHiDPI...), labelFonts...)
	}
	var opened bool
	for _, name := range fonts {
		if xproto.OpenFontChecked(c, fid, uint16(len(name)), name).Check() == nil {
			opened = true
			break
		}
	}
	f.labelH, f.ascent, f.charW = 18, 13, 9
	if opened {
		if q, err := xproto.QueryFont(c, xproto.Fontable(fid)).Reply(); err == nil {
			f.ascent = int(q.FontAscent)
			f.labelH = int(q.FontAscent+q.FontDescent) + 6
			if w := int(q.MaxBounds.CharacterWidth); w > 0 && w < 64 {
				f.charW = w
			}
		}
	}
	if f.gc, err = xproto.NewGcontextId(c); err != nil {
		return fmt.Errorf("frame: %w", err)
	}
	mask := uint32(xproto.GcForeground | xproto.GcBackground)
	vals := []uint32{fg, bg}
	if opened {
		mask |= xproto.GcFont
		vals = append(vals, uint32(fid))
	}
	if err := xproto.CreateGCChecked(c, f.gc, xproto.Drawable(f.screen.Root), mask, vals).Check(); err != nil {
		return fmt.Errorf("frame: create GC: %w", err)
	}
	return nil
}

// Window returns the frame's top-level window.
func (f *Frame) Window() uint32 { return uint32(f.win) }

// Parent returns the window Xephyr's -parent must name.
func (f *Frame) Parent() uint32 { return uint32(f.box) }

// LabelHeight is the height of the label strip at the frame's top.
func (f *Frame) LabelHeight() int { return f.labelH }

// Keys delivers the Name of each grabbed key pressed. A key pressed while
// an earlier one waits is dropped.
func (f *Frame) Keys() <-chan string { return f.keys }

// Done is closed when the frame is gone: the user closed it, or the
// connection to the host display ended. Err says which.
func (f *Frame) Done() <-chan struct{} { return f.done }

// Err returns nil before Done is closed, then ErrClosedByUser or the
// reason the connection ended.
func (f *Frame) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.doneErr
}

// Child waits until Xephyr's window is inside the frame and returns it, or
// returns an error when done is closed first or the frame is gone.
func (f *Frame) Child(done <-chan struct{}) (uint32, error) {
	select {
	case <-f.childC:
		f.mu.Lock()
		defer f.mu.Unlock()
		return uint32(f.child), nil
	case <-f.done:
		return 0, fmt.Errorf("frame: gone before Xephyr's window appeared: %w", f.Err())
	case <-done:
		return 0, errors.New("frame: Xephyr's window did not appear in the frame")
	}
}

// SetStatus shows text at the right of the label strip ("" clears it).
// Pass only text the host made: it is drawn as is (bytes outside printable
// ASCII as '?').
func (f *Frame) SetStatus(text string) {
	f.mu.Lock()
	f.status = printable(text)
	f.mu.Unlock()
	f.drawLabel(true)
	f.conn.Sync()
}

// Status returns the text SetStatus last showed.
func (f *Frame) Status() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Close destroys the frame and closes its connection. It is idempotent.
func (f *Frame) Close() { f.conn.Close() }

func (f *Frame) finish(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return
	default:
	}
	f.doneErr = err
	close(f.done)
}

// loop follows the frame's events until the connection ends.
func (f *Frame) loop() {
	for {
		ev, xerr := f.conn.WaitForEvent()
		if ev == nil && xerr == nil {
			f.finish(errors.New("the connection to the host display ended"))
			return
		}
		if ev == nil {
			continue // an error of a request whose reply nobody waits for (BadWindow once Xephyr left)
		}
		switch e := ev.(type) {
		case xproto.ExposeEvent:
			if e.Window == f.win && e.Count == 0 {
				f.drawLabel(false)
			}
		case xproto.ConfigureNotifyEvent:
			switch e.Window {
			case f.win:
				f.resized(int(e.Width), int(e.Height))
			case f.childWindow():
				f.enforce(e)
			}
		case xproto.CreateNotifyEvent:
			if e.Parent == f.box {
				f.adopt(e.Window)
			}
		case xproto.DestroyNotifyEvent:
			if e.Window == f.childWindow() {
				f.mu.Lock()
				f.child = 0
				f.mu.Unlock()
			}
		case xproto.ClientMessageEvent:
			if e.Window == f.win && e.Type == f.atoms.protocols && e.Format == 32 &&
				len(e.Data.Data32) > 0 && xproto.Atom(e.Data.Data32[0]) == f.atoms.deleteWindow {
				f.finish(ErrClosedByUser)
			}
		case xproto.FocusInEvent:
			// The window manager focused the frame: hand the focus to
			// Xephyr's window so keys reach it wherever the pointer is.
			if e.Event == f.win && e.Detail != xproto.NotifyDetailInferior && e.Mode == xproto.NotifyModeNormal {
				if ch := f.childWindow(); ch != 0 {
					xproto.SetInputFocus(f.conn, xproto.InputFocusParent, ch, xproto.TimeCurrentTime)
				}
			}
		case xproto.KeyPressEvent:
			// The grab matched the modifier keys only; the state also has
			// the buttons held (Button1Mask and up), which it ignored.
			if name, ok := f.keyMap[keyEvent{e.Detail, e.State & keyMods &^ ignoredMods}]; ok {
				select {
				case f.keys <- name:
				default:
				}
			}
		}
	}
}

func (f *Frame) childWindow() xproto.Window {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.child
}

// adopt records Xephyr's window and gives it the frame's inner size.
func (f *Frame) adopt(w xproto.Window) {
	f.mu.Lock()
	first := f.child == 0
	if first {
		f.child = w
	}
	f.mu.Unlock()
	if !first {
		return
	}
	select {
	case <-f.childC:
	default:
		close(f.childC)
	}
	iw, ih := f.inner()
	xproto.ConfigureWindow(f.conn, w, xproto.ConfigWindowX|xproto.ConfigWindowY|xproto.ConfigWindowWidth|xproto.ConfigWindowHeight,
		[]uint32{0, 0, uint32(iw), uint32(ih)})
}

// inner is the nested window's size for the frame's current size.
func (f *Frame) inner() (int, int) {
	if f.fixedSize {
		return f.fixedW, f.fixedH
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return max(f.w-2*Border, 1), max(f.h-f.labelH-Border, 1)
}

// resized follows a new frame size (the user or their window manager).
func (f *Frame) resized(w, h int) {
	f.mu.Lock()
	same := w == f.w && h == f.h
	f.w, f.h = w, h
	child := f.child
	f.mu.Unlock()
	if same {
		return
	}
	iw, ih := f.inner()
	xproto.ConfigureWindow(f.conn, f.box, xproto.ConfigWindowWidth|xproto.ConfigWindowHeight, []uint32{uint32(iw), uint32(ih)})
	if child != 0 && !f.fixedSize {
		xproto.ConfigureWindow(f.conn, child, xproto.ConfigWindowX|xproto.ConfigWindowY|xproto.ConfigWindowWidth|xproto.ConfigWindowHeight,
			[]uint32{0, 0, uint32(iw), uint32(ih)})
	}
	f.drawLabel(true)
}

// enforce puts Xephyr's window back to the frame's inner size and place
// when something else changed it (a resize asked for from the nested
// display).
func (f *Frame) enforce(e xproto.ConfigureNotifyEvent) {
	iw, ih := f.inner()
	if e.X == 0 && e.Y == 0 && int(e.Width) == iw && int(e.Height) == ih {
		return
	}
	xproto.ConfigureWindow(f.conn, e.Window, xproto.ConfigWindowX|xproto.ConfigWindowY|xproto.ConfigWindowWidth|xproto.ConfigWindowHeight,
		[]uint32{0, 0, uint32(iw), uint32(ih)})
	f.mu.Lock()
	f.refusals++
	n := f.refusals
	f.mu.Unlock()
	if n == 1 || n%100 == 0 {
		f.notice(fmt.Sprintf("the nested display's window became %dx%d+%d+%d; kept at %dx%d, the frame's size (%d times)",
			e.Width, e.Height, e.X, e.Y, iw, ih, n))
	}
}

// drawLabel draws the label strip: the label at the left, the status at
// the right. clear first repaints the strip's background.
func (f *Frame) drawLabel(clear bool) {
	f.mu.Lock()
	w, status := f.w, f.status
	f.mu.Unlock()
	if clear {
		xproto.ClearArea(f.conn, false, f.win, 0, 0, uint16(w), uint16(f.labelH))
	}
	y := int16((f.labelH-f.ascent)/2 + f.ascent - 1)
	text := clip(f.label, 255)
	xproto.ImageText8(f.conn, byte(len(text)), xproto.Drawable(f.win), f.gc, Border+2, y, text)
	if status != "" {
		s := clip(status, 255)
		x := w - Border - 2 - f.charW*len(s)
		if x > Border+2+f.charW*len(text)+16 {
			xproto.ImageText8(f.conn, byte(len(s)), xproto.Drawable(f.win), f.gc, int16(x), y, s)
		}
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// printable keeps printable ASCII and shows every other byte as '?': the
// label font is Latin-1 and the label must say exactly what it means.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 0x20 && r < 0x7f {
			return r
		}
		return '?'
	}, s)
}

func u32(v ...uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		xgb.Put32(b[4*i:], x)
	}
	return b
}

func internAtom(c *xgb.Conn, name string) (xproto.Atom, error) {
	r, err := xproto.InternAtom(c, false, uint16(len(name)), name).Reply()
	if err != nil {
		return 0, fmt.Errorf("frame: intern atom %s: %w", name, err)
	}
	return r.Atom, nil
}
