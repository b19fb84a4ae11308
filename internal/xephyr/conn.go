package xephyr

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jezek/xgb"

	"github.com/xvmview/xvmview/internal/xauth"
)

// Dial connects to the nested display's unix socket and authenticates with
// the cookie (MIT-MAGIC-COOKIE-1). ctx bounds the connect and the X setup;
// it does not affect the returned connection. The caller owns the
// connection and must Close it; with -terminate, the server exits when the
// last client leaves, so keep this connection for the whole session.
//
// Errors name the display; a refused setup carries the server's reason
// ("Authorization required, ...").
func Dial(ctx context.Context, display int, c xauth.Cookie) (*xgb.Conn, error) {
	nc, err := dialUnix(ctx, display)
	if err != nil {
		return nil, err
	}
	conn, err := setupXGB(ctx, nc, c.Hex())
	if err != nil {
		return nil, fmt.Errorf("connect to nested display :%d: %w", display, err)
	}
	return conn, nil
}

func dialUnix(ctx context.Context, display int) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socketPath(display))
	if err != nil {
		return nil, fmt.Errorf("connect to display :%d: %w", display, err)
	}
	return nc, nil
}

// setupXGB runs xgb's connection setup on nc, aborting it when ctx ends.
// cookieHex "" means no authorization. It closes nc on error.
func setupXGB(ctx context.Context, nc net.Conn, cookieHex string) (*xgb.Conn, error) {
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	var conn *xgb.Conn
	var err error
	if cookieHex == "" {
		// xgb has no "no authorization" entry point other than reading
		// $XAUTHORITY, which is process-global: give it a placeholder
		// cookie and strip it from the setup request on the wire.
		conn, err = xgb.NewConnNetWithCookieHex(&noAuthConn{Conn: nc}, "00000000000000000000000000000000")
	} else {
		conn, err = xgb.NewConnNetWithCookieHex(nc, cookieHex)
	}
	if !stop() {
		// ctx ended during the setup: the deadline may have broken it.
		if conn != nil {
			conn.Close()
		}
		_ = nc.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return conn, nil
}

// noAuthConn rewrites the first write, xgb's connection setup request, into
// the same request without authorization name and data.
type noAuthConn struct {
	net.Conn
	rewritten bool // only touched by xgb's setup, before its goroutines start
}

func (c *noAuthConn) Write(b []byte) (int, error) {
	if c.rewritten {
		return c.Conn.Write(b)
	}
	c.rewritten = true
	if len(b) < 12 {
		return 0, errors.New("unexpected X setup request")
	}
	if _, err := c.Conn.Write(setupRequest(b[0], "", nil)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// setupRequest builds an X11 connection setup request (X protocol,
// "Connection Setup") in byte order order ('l' or 'B').
func setupRequest(order byte, authName string, authData []byte) []byte {
	pad := func(n int) int { return (n + 3) &^ 3 }
	b := make([]byte, 12+pad(len(authName))+pad(len(authData)))
	var bo binary.ByteOrder = binary.LittleEndian
	if order == 'B' {
		bo = binary.BigEndian
	}
	b[0] = order
	bo.PutUint16(b[2:], 11) // protocol major
	bo.PutUint16(b[4:], 0)  // protocol minor
	bo.PutUint16(b[6:], uint16(len(authName)))
	bo.PutUint16(b[8:], uint16(len(authData)))
	copy(b[12:], authName)
	copy(b[12+pad(len(authName)):], authData)
	return b
}

// OpenServerError reports that a display accepted a client it should have
// refused: the -auth file is empty, missing or unreadable, or access control
// is off. The display must not be used.
type OpenServerError struct {
	Display int
	With    string // "no cookie" or "a wrong cookie"
}

func (e *OpenServerError) Error() string {
	return fmt.Sprintf("display :%d accepted a client with %s: its access control is off (empty or unreadable -auth file, or xhost); refusing to use it", e.Display, e.With)
}

// CheckRefusesCookieless connects to the display twice, once without
// authorization and once with a random wrong cookie, speaking only the X
// connection setup. It returns nil when the server refused both, an
// *OpenServerError when it accepted either, and another error when it could
// not tell (connect failed, ctx ended).
//
// Call it only while the launcher holds its own connection (Dial): if the
// server wrongly accepts a probe, the probe leaving would end a -terminate
// server that had no other client.
func CheckRefusesCookieless(ctx context.Context, display int) error {
	wrong, err := xauth.NewCookie()
	if err != nil {
		return fmt.Errorf("check display :%d refuses strangers: %w", display, err)
	}
	for _, p := range []struct {
		with string
		name string
		data []byte
	}{
		{"no cookie", "", nil},
		{"a wrong cookie", xauth.CookieName, wrong.Bytes()},
	} {
		accepted, err := probeSetup(ctx, display, p.name, p.data)
		if err != nil {
			return fmt.Errorf("check display :%d refuses clients with %s: %w", display, p.with, err)
		}
		if accepted {
			return &OpenServerError{Display: display, With: p.with}
		}
	}
	return nil
}

// probeSetup sends a connection setup request and reports whether the
// server answered Success (1); Failed (0) and Authenticate (2) are refusals.
func probeSetup(ctx context.Context, display int, authName string, authData []byte) (accepted bool, err error) {
	nc, err := dialUnix(ctx, display)
	if err != nil {
		return false, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := nc.Write(setupRequest('l', authName, authData)); err != nil {
		return false, ctxOr(ctx, fmt.Errorf("send X setup: %w", err))
	}
	var head [8]byte
	if _, err := io.ReadFull(nc, head[:]); err != nil {
		return false, ctxOr(ctx, fmt.Errorf("read X setup reply: %w", err))
	}
	switch head[0] {
	case 0, 2:
		return false, nil
	case 1:
		return true, nil
	default:
		return false, fmt.Errorf("unexpected X setup reply status %d", head[0])
	}
}

func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
