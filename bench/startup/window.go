package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// errNotYet is what a locator returns while the nested display does not
// exist yet.
var errNotYet = errors.New("not yet")

// locator finds the nested display and its cookie from outside the
// launcher, or returns errNotYet.
type locator func() (display int, c xauth.Cookie, err error)

// waitWindow polls until the nested display shows the app's first window and
// returns the time since start when a poll first saw it. It connects only
// once the locator found the display (a failing connect is "not yet"), holds
// that one connection until it returns, and closes it before returning; by
// then the app and the window manager are clients, so the bench leaving does
// not trigger Xephyr's -terminate.
//
// "The app's window" is a viewable, non-override-redirect child of the root
// (with twm: the frame it reparents the app into; with no window manager:
// the app's own window) that is, or has within two levels below it, a
// viewable window whose WM_CLASS instance or class is app (case
// insensitive). The resolution is the poll interval.
//
// It also returns the inode of the display's socket, for checking later that
// the session removed it. It returns an error when ctx ends or exited is
// closed (the launcher died) first, naming the last reason the display could
// not be checked.
func waitWindow(ctx context.Context, start time.Time, find locator, app string, poll time.Duration, exited <-chan struct{}) (d time.Duration, ino uint64, err error) {
	app = filepath.Base(app)
	var conn *xgb.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	last := errNotYet
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		at := time.Now()
		if conn == nil {
			n, c, err := find()
			if err == nil {
				dctx, cancel := context.WithTimeout(ctx, time.Second)
				conn, err = xephyr.Dial(dctx, n, c)
				cancel()
				if err == nil {
					ino = socketInode(n)
				}
			}
			if err != nil {
				last = err
			}
		}
		if conn != nil {
			ok, err := hasAppWindow(conn, app)
			if err != nil {
				// The server went away (e.g. an early -terminate): look
				// for the display again.
				conn.Close()
				conn, last = nil, err
			} else if ok {
				return at.Sub(start), ino, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ino, fmt.Errorf("no window of %s on the nested display: %w (last: %v)", app, ctx.Err(), last)
		case <-exited:
			return 0, ino, fmt.Errorf("the launcher exited before a window of %s mapped (last: %v)", app, last)
		case <-tick.C:
		}
	}
}

// hasAppWindow reports whether a top-level window holding the app is mapped.
// An error means the connection is unusable.
func hasAppWindow(conn *xgb.Conn, app string) (bool, error) {
	root := xproto.Setup(conn).DefaultScreen(conn).Root
	tree, err := xproto.QueryTree(conn, root).Reply()
	if err != nil {
		return false, fmt.Errorf("query the nested display's windows: %w", err)
	}
	for _, w := range viewable(conn, tree.Children, false) {
		if holdsApp(conn, w, app, 2) {
			return true, nil
		}
	}
	return false, nil
}

// viewable returns the windows among ws that are viewable and, unless
// withOR, not override-redirect. Windows destroyed meanwhile are skipped.
func viewable(conn *xgb.Conn, ws []xproto.Window, withOR bool) []xproto.Window {
	cookies := make([]xproto.GetWindowAttributesCookie, len(ws))
	for i, w := range ws {
		cookies[i] = xproto.GetWindowAttributes(conn, w)
	}
	var out []xproto.Window
	for i, ck := range cookies {
		a, err := ck.Reply()
		if err != nil || a == nil {
			continue
		}
		if a.MapState == xproto.MapStateViewable && (withOR || !a.OverrideRedirect) {
			out = append(out, ws[i])
		}
	}
	return out
}

// holdsApp reports whether w, or a viewable window up to depth levels below
// it, has WM_CLASS instance or class equal to app.
func holdsApp(conn *xgb.Conn, w xproto.Window, app string, depth int) bool {
	p, err := xproto.GetProperty(conn, false, w, xproto.AtomWmClass, xproto.AtomString, 0, 64).Reply()
	if err == nil && p != nil {
		for part := range bytes.SplitSeq(p.Value, []byte{0}) {
			if len(part) > 0 && strings.EqualFold(string(part), app) {
				return true
			}
		}
	}
	if depth == 0 {
		return false
	}
	tree, err := xproto.QueryTree(conn, w).Reply()
	if err != nil {
		return false
	}
	for _, c := range viewable(conn, tree.Children, true) {
		if holdsApp(conn, c, app, depth-1) {
			return true
		}
	}
	return false
}

// cookieFromFile returns the MIT-MAGIC-COOKIE-1 of the first such entry in
// an Xauthority file; a missing or not yet complete file is errNotYet.
func cookieFromFile(path string) (xauth.Cookie, error) {
	entries, err := xauth.ReadFile(path)
	if err != nil {
		return xauth.Cookie{}, fmt.Errorf("%w: %v", errNotYet, err)
	}
	for _, e := range entries {
		if e.Name == xauth.CookieName && len(e.Data) == len(xauth.Cookie{}) {
			return xauth.Cookie(e.Data), nil
		}
	}
	return xauth.Cookie{}, fmt.Errorf("%w: no %s entry in %s", errNotYet, xauth.CookieName, path)
}
