package xephyr

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/xauth"
)

// HostFacts describes the host display, for sizing and configuring the
// nested one.
type HostFacts struct {
	Width, Height     int // root window of the display's screen, in pixels
	WidthMM, HeightMM int // physical size as the server reports it
	XKB               XKB // from the _XKB_RULES_NAMES root property; zero if unset
}

// DPI returns the horizontal dots per inch from the reported size, or 0
// when the server reports no physical size.
func (f HostFacts) DPI() int {
	if f.WidthMM <= 0 {
		return 0
	}
	return int(float64(f.Width)*25.4/float64(f.WidthMM) + 0.5)
}

// QueryHost connects to the host display (a DISPLAY value such as ":0",
// ":0.1", "unix:0", "localhost:10.0" or "/path/to/socket:0") with the
// MIT-MAGIC-COOKIE-1 entry for it from the Xauthority file xauthority (""
// or no matching entry: no authorization, for displays using host-based
// access), and returns its screen size and XKB names. ctx bounds the whole
// query.
//
// Errors name the display: bad display string, unreadable Xauthority file,
// connection refused, authorization refused (with the server's reason).
func QueryHost(ctx context.Context, display, xauthority string) (HostFacts, error) {
	h, err := OpenHost(ctx, display, xauthority)
	if err != nil {
		return HostFacts{}, err
	}
	h.Close()
	return h.Facts, nil
}

// Host is a connection to the host display that stays open after its
// query. A launch holds it until Xephyr has connected: an X server resets
// when its last client leaves (Xvfb, or xinit's server when the launcher is
// its only client), and Xephyr connecting during that reset fails with
// "cannot open host display".
type Host struct {
	Facts HostFacts
	conn  *xgb.Conn
}

// Close closes the connection; it may be called more than once.
func (h *Host) Close() { h.conn.Close() }

// OpenHost is QueryHost that keeps the connection open: ctx bounds the
// query, not the connection. Close it when done.
func OpenHost(ctx context.Context, display, xauthority string) (*Host, error) {
	d, err := parseDisplay(display)
	if err != nil {
		return nil, err
	}
	conn, nc, err := dialHost(ctx, d, display, xauthority)
	if err != nil {
		return nil, fmt.Errorf("query host display %s: %w", display, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	facts, err := queryFacts(conn, d.screen)
	if !stop() && err == nil {
		err = ctx.Err() // the connection was closed under the answer
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("query host display %s: %w", display, ctxOr(ctx, err))
	}
	return &Host{Facts: facts, conn: conn}, nil
}

// DialHost connects to the host display as OpenHost does (display is a
// DISPLAY value, xauthority the file with its cookie, "" for none) and
// returns the connection, whose default screen is the DISPLAY's screen.
// ctx bounds the connect and the X setup. The caller closes it.
//
// Errors name the display: bad display string, unreadable Xauthority
// file, connection refused, authorization refused.
func DialHost(ctx context.Context, display, xauthority string) (*xgb.Conn, error) {
	d, err := parseDisplay(display)
	if err != nil {
		return nil, err
	}
	conn, _, err := dialHost(ctx, d, display, xauthority)
	if err != nil {
		return nil, fmt.Errorf("connect to host display %s: %w", display, err)
	}
	if setup := xproto.Setup(conn); setup == nil || d.screen >= len(setup.Roots) {
		conn.Close()
		return nil, fmt.Errorf("connect to host display %s: screen %d does not exist", display, d.screen)
	}
	conn.DefaultScreen = d.screen
	return conn, nil
}

func dialHost(ctx context.Context, d hostDisplay, display, xauthority string) (*xgb.Conn, net.Conn, error) {
	cookieHex := ""
	if xauthority != "" {
		var err error
		cookieHex, err = lookupCookie(xauthority, d)
		if err != nil {
			return nil, nil, err
		}
	}
	var dl net.Dialer
	nc, err := dl.DialContext(ctx, d.network, d.address)
	if err != nil {
		return nil, nil, err
	}
	conn, err := setupXGB(ctx, nc, cookieHex)
	if err != nil {
		return nil, nil, err
	}
	return conn, nc, nil
}

func queryFacts(conn *xgb.Conn, screen int) (HostFacts, error) {
	setup := xproto.Setup(conn)
	if setup == nil || len(setup.Roots) == 0 {
		return HostFacts{}, errors.New("server sent no screens")
	}
	if screen >= len(setup.Roots) {
		return HostFacts{}, fmt.Errorf("screen %d does not exist (the server has %d)", screen, len(setup.Roots))
	}
	s := setup.Roots[screen]
	facts := HostFacts{
		Width: int(s.WidthInPixels), Height: int(s.HeightInPixels),
		WidthMM: int(s.WidthInMillimeters), HeightMM: int(s.HeightInMillimeters),
	}
	// The server keeps _XKB_RULES_NAMES on the first screen's root.
	atom, err := xproto.InternAtom(conn, true, uint16(len("_XKB_RULES_NAMES")), "_XKB_RULES_NAMES").Reply()
	if err != nil {
		return HostFacts{}, fmt.Errorf("intern _XKB_RULES_NAMES: %w", err)
	}
	if atom.Atom == xproto.AtomNone {
		return facts, nil
	}
	prop, err := xproto.GetProperty(conn, false, setup.Roots[0].Root, atom.Atom, xproto.AtomString, 0, 1024).Reply()
	if err != nil {
		return HostFacts{}, fmt.Errorf("read _XKB_RULES_NAMES: %w", err)
	}
	if prop.Format == 8 {
		facts.XKB = parseRulesNames(prop.Value)
	}
	return facts, nil
}

// parseRulesNames splits the NUL-separated rules, model, layout, variant,
// options of _XKB_RULES_NAMES.
func parseRulesNames(v []byte) XKB {
	f := strings.Split(strings.TrimRight(string(v), "\x00"), "\x00")
	for len(f) < 5 {
		f = append(f, "")
	}
	return XKB{Rules: f[0], Model: f[1], Layout: f[2], Variant: f[3], Options: f[4]}
}

// hostDisplay is a parsed DISPLAY value.
type hostDisplay struct {
	network, address string // for net.Dial
	local            bool   // its Xauthority key is family Local (this machine's name)
	key              string // for TCP: the name xauth.ParseDisplay maps to the key
	number           string // display number, canonical decimal
	screen           int
}

// parseDisplay parses a DISPLAY value with xauth.SplitDisplay, the one
// parser of display names, for the forms libxcb connects to:
// [/path/sock]:N, [unix]:N, [tcp/]host:N, each with an optional .S. Which
// Xauthority entry belongs to it is xauth.ParseDisplay's rule: only
// localhost, 127.0.0.1 and ::1 are this machine (family Local), as in libxcb.
func parseDisplay(display string) (hostDisplay, error) {
	bad := func(why string) (hostDisplay, error) {
		return hostDisplay{}, fmt.Errorf("host display %q: %s; expected a DISPLAY value like :0", display, why)
	}
	s, err := xauth.SplitDisplay(display)
	if err != nil {
		var de *xauth.DisplayError
		if errors.As(err, &de) {
			return bad(de.Reason)
		}
		return bad(err.Error())
	}
	if s.Number > 65535-6000 {
		return bad("display number too large for a TCP port")
	}
	d := hostDisplay{number: strconv.Itoa(s.Number), screen: s.Screen}
	switch {
	case s.Unix && strings.HasPrefix(s.Host, "/"):
		d.network, d.address, d.local = "unix", s.Host+":"+d.number, true
	case s.Unix || (s.Protocol != "" && s.Protocol != "tcp"):
		return bad("unsupported protocol")
	case s.Protocol == "" && (s.Host == "" || s.Host == "unix"):
		d.network, d.address, d.local = "unix", socketPath(s.Number), true
	default:
		d.network, d.address = "tcp", net.JoinHostPort(s.Host, strconv.Itoa(6000+s.Number))
		d.key = d.address[:strings.LastIndexByte(d.address, ':')] + ":" + d.number
		// The key's host part never matters for Local: a placeholder name.
		k, err := xauth.ParseDisplay(d.key, "-")
		d.local = err == nil && k.Family == xauth.FamilyLocal
	}
	return d, nil
}

// lookupCookie returns the hex MIT-MAGIC-COOKIE-1 for d from the
// Xauthority file path by libXau's rule (xauth.Lookup), or "" when the file
// does not exist or has no usable entry.
func lookupCookie(path string, d hostDisplay) (string, error) {
	entries, err := xauth.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	family, addr := xauth.FamilyLocal, []byte(nil)
	if d.local {
		hn, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("find Xauthority entry: %w", err)
		}
		addr = []byte(hn)
	} else if k, err := xauth.ParseDisplay(d.key, "-"); err == nil {
		family, addr = k.Family, k.Address
	} else {
		// A host name: resolving it is libxcb's business; only Wild
		// entries can match here.
		var wild []xauth.Entry
		for _, e := range entries {
			if e.Family == xauth.FamilyWild {
				wild = append(wild, e)
			}
		}
		entries, family = wild, xauth.FamilyWild
	}
	e, ok := xauth.Lookup(entries, family, addr, d.number, xauth.CookieName)
	if !ok || len(e.Data) != 16 {
		return "", nil
	}
	return hex.EncodeToString(e.Data), nil
}
