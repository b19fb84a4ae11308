// Package clipboard moves text through the CLIPBOARD selection of one X
// display: it reads the current owner's text (Read) and offers text as the
// owner (Offer). The session uses one Conn on the host display and one on
// the nested display, and moves text between them only on the user's act.
//
// It handles CLIPBOARD only, so PRIMARY (the mouse selection) never
// crosses, and text only (UTF8_STRING, STRING). The other side may be
// hostile: every wait on it has the caller's deadline, and Read takes at
// most max bytes from it (a larger answer is refused unread, an INCR
// transfer is cut off at the cap).
package clipboard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
)

// ErrEmpty means the display's CLIPBOARD holds no text: no owner, or an
// owner that refused both UTF8_STRING and STRING.
var ErrEmpty = errors.New("the clipboard holds no text")

// TooLargeError means the owner's text is larger than the cap.
type TooLargeError struct {
	Size int // bytes offered, or at least this many for an INCR transfer cut off
	Max  int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the clipboard's text (%d bytes or more) is larger than the %d bytes allowed", e.Size, e.Max)
}

// Conn is the clipboard of one display. Its methods are safe for
// concurrent use; Reads run one at a time.
type Conn struct {
	c     *xgb.Conn
	win   xproto.Window
	chunk int // bytes per ChangeProperty
	a     atoms

	sem chan struct{} // one Read or Offer at a time

	stamps chan xproto.Timestamp // server times from PropertyNotify on a.stamp

	// beforeRelease, when set (tests), runs in endOffer before the
	// selection is given up.
	beforeRelease func()

	mu      sync.Mutex
	events  chan xgb.Event // the running Read's events, nil between Reads
	offer   *offerState
	done    chan struct{}
	closing bool
}

type atoms struct {
	clipboard, targets, utf8, text, incr, prop, stamp xproto.Atom
}

// offerState is text this Conn owns the CLIPBOARD with.
type offerState struct {
	text   string
	time   xproto.Timestamp // when this Conn took the selection for it
	uses   int              // data transfers left; <0 = unlimited
	served int              // data transfers done
	timer  *time.Timer
	end    func(Ended)
}

// Ended says how an offer ended.
type Ended struct {
	Reason string // "taken", "timeout", "replaced", "closed"
	Served int    // data transfers served
}

// New makes a Conn on c, which it takes over (Close closes it): a hidden
// window of its own on the default screen, and a goroutine that follows its
// events. ctx bounds the round trips to the server: one that another client
// holds grabbed answers nobody, and New then returns an error wrapping
// ctx.Err(), leaving c to close in the background when the server lets go
// (or with the process).
func New(ctx context.Context, c *xgb.Conn) (*Conn, error) {
	type result struct {
		k   *Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		k, err := newConn(c)
		res <- result{k, err}
	}()
	select {
	case r := <-res:
		return r.k, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.k != nil {
				r.k.Close(context.Background())
			}
		}()
		return nil, fmt.Errorf("clipboard: the display did not answer: %w", ctx.Err())
	}
}

func newConn(c *xgb.Conn) (*Conn, error) {
	k := &Conn{c: c, done: make(chan struct{}), sem: make(chan struct{}, 1), stamps: make(chan xproto.Timestamp, 1)}
	for _, a := range []struct {
		dst  *xproto.Atom
		name string
	}{
		{&k.a.clipboard, "CLIPBOARD"}, {&k.a.targets, "TARGETS"}, {&k.a.utf8, "UTF8_STRING"},
		{&k.a.text, "TEXT"}, {&k.a.incr, "INCR"}, {&k.a.prop, "XVMVIEW_CLIPBOARD"},
		{&k.a.stamp, "XVMVIEW_TIMESTAMP"},
	} {
		r, err := xproto.InternAtom(c, false, uint16(len(a.name)), a.name).Reply()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("clipboard: intern %s: %w", a.name, err)
		}
		*a.dst = r.Atom
	}
	s := xproto.Setup(c)
	k.chunk = min(64<<10, int(s.MaximumRequestLength)*4-64)
	screen := s.DefaultScreen(c)
	win, err := xproto.NewWindowId(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("clipboard: %w", err)
	}
	k.win = win
	err = xproto.CreateWindowChecked(c, 0, win, screen.Root, -10, -10, 1, 1, 0, xproto.WindowClassInputOnly, 0,
		xproto.CwEventMask, []uint32{xproto.EventMaskPropertyChange}).Check()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("clipboard: create window: %w", err)
	}
	go k.loop()
	return k, nil
}

// Close ends any offer (its owner goes with the connection), closes the
// connection and waits until the server has let it go, or until ctx ends:
// a server that another client holds grabbed (any client of the nested
// display may) answers nobody, and the connection then ends with the server
// or the process. Close may be called more than once.
func (k *Conn) Close(ctx context.Context) {
	k.mu.Lock()
	k.closing = true
	if k.offer != nil {
		k.offer.finish("closed")
		k.offer = nil
	}
	k.mu.Unlock()
	k.c.Close()
	select {
	case <-k.done:
	case <-ctx.Done():
	}
}

func (k *Conn) loop() {
	defer close(k.done)
	for {
		ev, xerr := k.c.WaitForEvent()
		if ev == nil && xerr == nil {
			k.mu.Lock()
			if k.offer != nil {
				k.offer.finish("closed")
				k.offer = nil
			}
			k.mu.Unlock()
			return
		}
		if ev == nil {
			continue // an unchecked request failed, e.g. a requestor's window vanished
		}
		switch e := ev.(type) {
		case xproto.SelectionRequestEvent:
			k.serve(e)
		case xproto.SelectionClearEvent:
			if e.Selection == k.a.clipboard && e.Owner == k.win {
				k.cleared(e.Time)
			}
		case xproto.PropertyNotifyEvent:
			if e.Window == k.win && e.Atom == k.a.stamp {
				select {
				case k.stamps <- e.Time:
				default:
				}
				continue
			}
			k.toRead(ev)
		case xproto.SelectionNotifyEvent:
			k.toRead(ev)
		}
	}
}

// toRead passes ev to the running Read, if any.
func (k *Conn) toRead(ev xgb.Event) {
	k.mu.Lock()
	ch := k.events
	k.mu.Unlock()
	if ch != nil {
		select {
		case ch <- ev:
		default: // a flood: the Read's deadline deals with it
		}
	}
}

// cleared ends the current offer when another client took the selection
// after this Conn took it for the offer (at). A SelectionClear from before
// (the loss of an earlier offer, seen only after a new one began) is stale.
func (k *Conn) cleared(at xproto.Timestamp) {
	k.mu.Lock()
	o := k.offer
	k.mu.Unlock()
	if o != nil && !before(at, o.time) {
		k.endOffer(o, "replaced")
	}
}

// before reports whether server time a is earlier than b (the server's
// millisecond clock wraps after 49.7 days).
func before(a, b xproto.Timestamp) bool { return int32(a-b) < 0 }

// timestamp returns the server's time now, as ICCCM 2.1 says to get it: a
// zero-length append to a property of our window, whose PropertyNotify
// carries the time.
func (k *Conn) timestamp(ctx context.Context) (xproto.Timestamp, error) {
	select {
	case <-k.stamps: // a late answer to an earlier call
	default:
	}
	xproto.ChangeProperty(k.c, xproto.PropModeAppend, k.win, k.a.stamp, xproto.AtomString, 8, 0, nil)
	select {
	case t := <-k.stamps:
		return t, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("clipboard: the display did not answer: %w", ctx.Err())
	}
}

// Read returns the text the display's CLIPBOARD owner offers, as valid
// UTF-8 without NUL bytes, at most max bytes. ctx bounds every wait, on the
// owner and on the X server (one that another client holds grabbed answers
// nobody).
//
// Errors: ErrEmpty; *TooLargeError; an error wrapping ctx.Err() when the
// owner or the server did not answer in time; X errors.
func (k *Conn) Read(ctx context.Context, max int) (string, error) {
	return k.bounded(ctx, func() (string, error) { return k.read(ctx, max) })
}

// bounded runs f, one at a time per Conn, and returns when it does or when
// ctx ends. f's X round trips cannot be interrupted: one that hangs on a
// grabbed server goes on in the background until the connection closes,
// holding back the next call only until that call's own ctx ends.
func (k *Conn) bounded(ctx context.Context, f func() (string, error)) (string, error) {
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("clipboard: the display did not answer: %w", ctx.Err())
	}
	type result struct {
		s   string
		err error
	}
	res := make(chan result, 1)
	go func() {
		defer func() { <-k.sem }()
		s, err := f()
		res <- result{s, err}
	}()
	select {
	case r := <-res:
		return r.s, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("clipboard: the display did not answer: %w", ctx.Err())
	}
}

func (k *Conn) read(ctx context.Context, max int) (string, error) {
	owner, err := xproto.GetSelectionOwner(k.c, k.a.clipboard).Reply()
	if err != nil {
		return "", fmt.Errorf("clipboard: %w", err)
	}
	if owner.Owner == xproto.WindowNone {
		return "", ErrEmpty
	}
	if owner.Owner == k.win {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.offer == nil {
			return "", ErrEmpty
		}
		return k.offer.text, nil
	}
	ch := make(chan xgb.Event, 64)
	k.mu.Lock()
	k.events = ch
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.events = nil
		k.mu.Unlock()
		xproto.DeleteProperty(k.c, k.win, k.a.prop)
	}()
	for _, target := range []xproto.Atom{k.a.utf8, xproto.AtomString} {
		text, err := k.convert(ctx, ch, target, max)
		if errors.Is(err, ErrEmpty) {
			continue
		}
		return text, err
	}
	return "", ErrEmpty
}

// convert asks the owner for target and reads the answer.
func (k *Conn) convert(ctx context.Context, ch chan xgb.Event, target xproto.Atom, max int) (string, error) {
	xproto.DeleteProperty(k.c, k.win, k.a.prop)
	xproto.ConvertSelection(k.c, k.win, k.a.clipboard, target, k.a.prop, xproto.TimeCurrentTime)
	for {
		ev, err := wait(ctx, ch)
		if err != nil {
			return "", fmt.Errorf("clipboard: the owner did not answer: %w", err)
		}
		n, ok := ev.(xproto.SelectionNotifyEvent)
		if !ok || n.Requestor != k.win || n.Selection != k.a.clipboard {
			continue
		}
		if n.Property == xproto.AtomNone || n.Target != target {
			return "", ErrEmpty
		}
		break
	}
	head, err := xproto.GetProperty(k.c, false, k.win, k.a.prop, xproto.GetPropertyTypeAny, 0, 0).Reply()
	if err != nil {
		return "", fmt.Errorf("clipboard: %w", err)
	}
	switch {
	case head.Type == k.a.incr:
		return k.readIncr(ctx, ch, target, max)
	case head.Type != k.a.utf8 && head.Type != xproto.AtomString, head.Format != 8:
		return "", ErrEmpty
	case int64(head.BytesAfter) > int64(max):
		return "", &TooLargeError{Size: int(head.BytesAfter), Max: max}
	}
	p, err := xproto.GetProperty(k.c, true, k.win, k.a.prop, xproto.GetPropertyTypeAny, 0, uint32(max/4+1)).Reply()
	if err != nil {
		return "", fmt.Errorf("clipboard: %w", err)
	}
	if len(p.Value) > max || p.BytesAfter > 0 {
		return "", &TooLargeError{Size: len(p.Value) + int(p.BytesAfter), Max: max}
	}
	return toText(p.Value, p.Type == xproto.AtomString), nil
}

// readIncr reads an INCR transfer (ICCCM 2.7.2): each chunk is a new value
// of the property that we delete; an empty chunk ends it.
func (k *Conn) readIncr(ctx context.Context, ch chan xgb.Event, target xproto.Atom, max int) (string, error) {
	xproto.DeleteProperty(k.c, k.win, k.a.prop) // starts the transfer
	var buf []byte
	var latin1 bool
	for {
		ev, err := wait(ctx, ch)
		if err != nil {
			return "", fmt.Errorf("clipboard: the owner stopped sending after %d bytes: %w", len(buf), err)
		}
		n, ok := ev.(xproto.PropertyNotifyEvent)
		if !ok || n.Window != k.win || n.Atom != k.a.prop || n.State != xproto.PropertyNewValue {
			continue
		}
		p, err := xproto.GetProperty(k.c, true, k.win, k.a.prop, xproto.GetPropertyTypeAny, 0, uint32((max-len(buf))/4+1)).Reply()
		if err != nil {
			return "", fmt.Errorf("clipboard: %w", err)
		}
		if p.Format != 8 || p.Type != k.a.utf8 && p.Type != xproto.AtomString {
			return "", ErrEmpty
		}
		latin1 = p.Type == xproto.AtomString
		if len(p.Value) == 0 && p.BytesAfter == 0 {
			return toText(buf, latin1), nil
		}
		buf = append(buf, p.Value...)
		if len(buf) > max || p.BytesAfter > 0 {
			// Stop here: we delete no more, the owner gives up in time.
			return "", &TooLargeError{Size: len(buf) + int(p.BytesAfter), Max: max}
		}
	}
}

func wait(ctx context.Context, ch chan xgb.Event) (xgb.Event, error) {
	select {
	case ev := <-ch:
		return ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// toText makes b valid UTF-8 (from Latin-1 for STRING), without NULs.
func toText(b []byte, latin1 bool) string {
	var s string
	if latin1 {
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		s = string(r)
	} else {
		s = strings.ToValidUTF8(string(b), string(utf8.RuneError))
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// Offer makes this Conn the CLIPBOARD's owner with text, for uses data
// transfers (<= 0: any number) and for at most d (0: until replaced or
// Close). A new Offer replaces the last one. end, if not nil, is
// called once when the offer ends, from another goroutine. ctx bounds the
// round trips to the X server.
func (k *Conn) Offer(ctx context.Context, text string, uses int, d time.Duration, end func(Ended)) error {
	_, err := k.bounded(ctx, func() (string, error) { return "", k.own(ctx, text, uses, d, end) })
	return err
}

func (k *Conn) own(ctx context.Context, text string, uses int, d time.Duration, end func(Ended)) error {
	if uses <= 0 {
		uses = -1
	}
	// The selection is taken at a time of the server's, not CurrentTime, so
	// that giving it up later (with that time) cannot clear a newer
	// owner's, and a SelectionClear from before can be told apart.
	at, err := k.timestamp(ctx)
	if err != nil {
		return err
	}
	o := &offerState{text: text, time: at, uses: uses, end: end}
	k.mu.Lock()
	if k.offer != nil {
		k.offer.finish("replaced")
	}
	k.offer = o
	k.mu.Unlock()
	if err := xproto.SetSelectionOwnerChecked(k.c, k.win, k.a.clipboard, at).Check(); err != nil {
		k.end("closed")
		return fmt.Errorf("clipboard: take the selection: %w", err)
	}
	r, err := xproto.GetSelectionOwner(k.c, k.a.clipboard).Reply()
	if err != nil || r.Owner != k.win {
		k.end("replaced")
		return fmt.Errorf("clipboard: could not take the selection (%v)", err)
	}
	if d > 0 {
		k.mu.Lock()
		if k.offer == o {
			o.timer = time.AfterFunc(d, func() { k.endOffer(o, "timeout") })
		}
		k.mu.Unlock()
	}
	return nil
}

// end ends the current offer, giving the selection up unless another
// client took it.
func (k *Conn) end(reason string) {
	k.mu.Lock()
	o := k.offer
	k.mu.Unlock()
	if o != nil {
		k.endOffer(o, reason)
	}
}

func (k *Conn) endOffer(o *offerState, reason string) {
	k.mu.Lock()
	if k.offer != o {
		k.mu.Unlock()
		return
	}
	k.offer = nil
	closing := k.closing
	k.mu.Unlock()
	if reason != "replaced" && !closing {
		if k.beforeRelease != nil {
			k.beforeRelease()
		}
		// Only if it is still ours, and with the time we took it: a client
		// that took it after that keeps it (the server ignores a release
		// older than the selection's last change).
		if r, err := xproto.GetSelectionOwner(k.c, k.a.clipboard).Reply(); err == nil && r.Owner == k.win {
			xproto.SetSelectionOwner(k.c, xproto.WindowNone, k.a.clipboard, o.time)
			k.c.Sync()
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	o.finish(reason)
}

// finish stops the offer's timer and reports its end; k.mu is held or the
// offer is no longer reachable.
func (o *offerState) finish(reason string) {
	if o.timer != nil {
		o.timer.Stop()
	}
	if o.end != nil {
		go o.end(Ended{Reason: reason, Served: o.served})
	}
}

// serve answers a request for the selection: TARGETS, or the text as
// UTF8_STRING, TEXT or STRING; anything else is refused.
func (k *Conn) serve(e xproto.SelectionRequestEvent) {
	prop := e.Property
	if prop == xproto.AtomNone {
		prop = e.Target // an obsolete requestor
	}
	k.mu.Lock()
	o := k.offer
	k.mu.Unlock()
	ok := false
	if o != nil && e.Selection == k.a.clipboard && e.Owner == k.win {
		switch e.Target {
		case k.a.targets:
			t := []xproto.Atom{k.a.targets, k.a.utf8, k.a.text, xproto.AtomString}
			b := make([]byte, 4*len(t))
			for i, a := range t {
				xgb.Put32(b[4*i:], uint32(a))
			}
			xproto.ChangeProperty(k.c, xproto.PropModeReplace, e.Requestor, prop, xproto.AtomAtom, 32, uint32(len(t)), b)
			ok = true
		case k.a.utf8, k.a.text:
			k.put(e.Requestor, prop, k.a.utf8, []byte(o.text))
			ok = true
		case xproto.AtomString:
			k.put(e.Requestor, prop, xproto.AtomString, latin1(o.text))
			ok = true
		}
	}
	if !ok {
		prop = xproto.AtomNone
	}
	n := xproto.SelectionNotifyEvent{Time: e.Time, Requestor: e.Requestor, Selection: e.Selection, Target: e.Target, Property: prop}
	xproto.SendEvent(k.c, false, e.Requestor, 0, string(n.Bytes()))
	k.c.Sync()
	if ok && e.Target != k.a.targets {
		k.mu.Lock()
		o.served++
		last := o.uses > 0 && o.served >= o.uses
		k.mu.Unlock()
		if last {
			k.endOffer(o, "taken")
		}
	}
}

// put writes data to the requestor's property in requests that fit the
// server's request size (appending), so no INCR is needed for the sizes a
// session allows.
func (k *Conn) put(w xproto.Window, prop, typ xproto.Atom, data []byte) {
	mode := byte(xproto.PropModeReplace)
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), k.chunk)
		xproto.ChangeProperty(k.c, mode, w, prop, typ, 8, uint32(n), data[:n])
		data = data[n:]
		mode = xproto.PropModeAppend
	}
}

// latin1 is s as STRING: Latin-1, other characters as '?'.
func latin1(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			r = '?'
		}
		b = append(b, byte(r))
	}
	return b
}
