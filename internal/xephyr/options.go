package xephyr

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/xvmview/xvmview/internal/memcg"
)

// XKB names a keyboard configuration, as in the _XKB_RULES_NAMES root
// property and Xephyr's -xkb-* flags. Empty fields are not set.
type XKB struct {
	Rules, Model, Layout, Variant, Options string
}

// Options configure one Xephyr server. The zero value is not usable:
// AuthFile is required.
type Options struct {
	Binary     string   // program to run; default "Xephyr", looked up in PATH
	AuthFile   string   // required: the -auth file; must exist, be non-empty and not group/other accessible
	Screen     string   // "WxH" or "WxHxDEPTH", e.g. "1280x1024x24"; empty = Xephyr's default
	Title      string   // -title (WM_NAME); must not start with "-"
	Name       string   // -name (WM_CLASS); must not start with "-"
	ListenTCP  bool     // -listen tcp (all addresses, port 6000+N); otherwise -nolisten tcp
	Resizeable bool     // -resizeable: RandR follows the window size
	NoHostGrab bool     // -no-host-grab: no Ctrl+Shift keyboard grab
	Fullscreen bool     // -fullscreen
	DPI        int      // -dpi N when > 0
	XKB        XKB      // -xkb-rules/-model/-layout/-variant/-options for non-empty fields
	Audit      int      // -audit N when > 0 (2 logs "connected from ..." per client)
	Extra      []string // appended verbatim after the flags above; security-relevant flags are refused
	// Env is where Xephyr's environment comes from: Start passes on only
	// what opens the HOST display (DISPLAY, XAUTHORITY, XAUTHLOCALHOSTNAME;
	// HOME when XAUTHORITY is unset), never the rest (SSH_AUTH_SOCK...).
	// XAUTHORITY must be the host display's, never the nested -auth file.
	// nil means the launcher's environment.
	Env []string
	// MemoryLimit is Xephyr's RLIMIT_DATA in bytes, set before it accepts
	// clients: a client's allocations beyond it fail (BadAlloc). 0 = none;
	// otherwise at least MinMemoryLimit. DefaultMemoryLimit sizes it from
	// the screen.
	MemoryLimit int64
	// Memcg, when set, also puts Xephyr under MemoryLimit in a systemd
	// user scope or a memory cgroup (memcg.Apply; Config.Env defaults to
	// Env), before it accepts clients; RLIMIT_DATA stays as the backstop.
	// Server.Memory says what was used. nil: RLIMIT_DATA alone.
	Memcg *memcg.Config
	// Stderr receives Xephyr's stderr; nil discards it. A bounded tail is
	// kept either way for error messages.
	Stderr io.Writer
	// Parent is a host window for Xephyr's window to live in (-parent): the
	// launcher's trust frame. 0 = a top-level window of Xephyr's own.
	Parent uint32
}

// displayFD is the descriptor Xephyr writes its display number to: the first
// of exec.Cmd.ExtraFiles.
const displayFD = 3

var screenRE = regexp.MustCompile(`^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})(?:x([0-9]{1,2}))?$`)

var validDepths = map[int]bool{8: true, 15: true, 16: true, 24: true, 30: true, 32: true}

// disabledExtension is the X extension the nested server does not offer:
// XVideo, whose requests Xephyr's Xv adaptor passes on to the HOST display's
// Xv, so a guest client could drive the host server's video code; players
// fall back to MIT-SHM or PutImage. (RECORD cannot go alone: Xephyr 21.1's
// -extension RECORD also removes XTEST, which input tools need. See
// docs/SECURITY.md for the list and the reasons.)
const disabledExtension = "XVideo"

// refusedExtra are flags Extra may not carry: they would defeat the cookie
// (-ac, -auth, -listen, XDMCP), break readiness or teardown (-displayfd,
// -nolisten local, -noreset, -terminate).
var refusedExtra = map[string]string{
	"-ac":        "it disables access control",
	"-auth":      "the -auth file is Options.AuthFile",
	"-displayfd": "Start passes -displayfd itself",
	"-listen":    "use Options.ListenTCP",
	"-nolisten":  "Start chooses the listeners",
	"-reset":     "Start passes -reset -terminate itself",
	"-noreset":   "Start relies on -terminate",
	"-terminate": "Start passes -terminate itself",
	"-query":     "XDMCP is not supported",
	"-indirect":  "XDMCP is not supported",
	"-broadcast": "XDMCP is not supported",
	"-once":      "XDMCP is not supported",
	"-from":      "XDMCP is not supported",
	"-displayID": "XDMCP is not supported",
	"-cookie":    "XDMCP is not supported",
	"-nopn":      "it changes which listeners are used",
	"-pn":        "it changes which listeners are used",
	"-core":      "core dumps could hold the cookie",
	"-parent":    "use Options.Parent",
}

// TerminateDelay is the delay, in seconds, that Xephyr's -terminate waits
// after its last client left before it exits; a client that connects in
// the meantime keeps it running. Without a delay, any client that connected
// and left before the launcher's own connection ended the new server, even
// one the server refused for want of the cookie: a stray or hostile local
// client (measured on Xephyr 21.1.7: one cookieless xdpyinfo) could end
// every session as it started. Teardown and a dead launcher (Pdeathsig) end
// Xephyr without waiting for it.
const TerminateDelay = 5

// Args returns Xephyr's argv after the program name, exactly as Start passes
// it: "-displayfd 3 -auth FILE -reset -terminate 5 -extension XVideo", the
// listener choice, then the optional flags in a fixed order, then Extra. It
// does no I/O. It returns an error naming the field when a value is invalid.
func (o Options) Args() ([]string, error) {
	if o.AuthFile == "" {
		return nil, errors.New("xephyr options: AuthFile is required: the nested server must have a cookie file")
	}
	if strings.HasPrefix(o.AuthFile, "-") {
		return nil, fmt.Errorf("xephyr options: AuthFile %q must not start with \"-\"", o.AuthFile)
	}
	args := []string{"-displayfd", strconv.Itoa(displayFD), "-auth", o.AuthFile, "-reset", "-terminate", strconv.Itoa(TerminateDelay), "-extension", disabledExtension}
	if o.ListenTCP {
		args = append(args, "-listen", "tcp")
	} else {
		args = append(args, "-nolisten", "tcp")
	}
	if o.Parent != 0 {
		// Before -screen: Xephyr 21.1 gives -parent to the screen that a
		// later -screen makes; after it, that screen gets a top-level
		// window of its own and a second window appears in the parent.
		args = append(args, "-parent", fmt.Sprintf("0x%x", o.Parent))
	}
	if o.Screen != "" {
		if err := checkScreen(o.Screen); err != nil {
			return nil, err
		}
		args = append(args, "-screen", o.Screen)
	}
	if o.Resizeable {
		args = append(args, "-resizeable")
	}
	if o.NoHostGrab {
		args = append(args, "-no-host-grab")
	}
	if o.Fullscreen {
		args = append(args, "-fullscreen")
	}
	for _, f := range []struct{ flag, field, value string }{
		{"-title", "Title", o.Title},
		{"-name", "Name", o.Name},
	} {
		if f.value == "" {
			continue
		}
		if err := checkValue(f.field, f.value); err != nil {
			return nil, err
		}
		args = append(args, f.flag, f.value)
	}
	if o.DPI < 0 || o.DPI > 10000 {
		return nil, fmt.Errorf("xephyr options: DPI %d out of range: use 0 (unset) or 1..10000", o.DPI)
	}
	if o.DPI > 0 {
		args = append(args, "-dpi", strconv.Itoa(o.DPI))
	}
	for _, f := range []struct{ flag, field, value string }{
		{"-xkb-rules", "XKB.Rules", o.XKB.Rules},
		{"-xkb-model", "XKB.Model", o.XKB.Model},
		{"-xkb-layout", "XKB.Layout", o.XKB.Layout},
		{"-xkb-variant", "XKB.Variant", o.XKB.Variant},
		{"-xkb-options", "XKB.Options", o.XKB.Options},
	} {
		if f.value == "" {
			continue
		}
		if err := checkValue(f.field, f.value); err != nil {
			return nil, err
		}
		if strings.ContainsFunc(f.value, unicode.IsSpace) {
			return nil, fmt.Errorf("xephyr options: %s %q must not contain spaces", f.field, f.value)
		}
		args = append(args, f.flag, f.value)
	}
	if o.MemoryLimit != 0 && o.MemoryLimit < MinMemoryLimit {
		return nil, fmt.Errorf("xephyr options: MemoryLimit %d bytes is below the minimum of %d MiB", o.MemoryLimit, MinMemoryLimit>>20)
	}
	if o.Audit < 0 || o.Audit > 4 {
		return nil, fmt.Errorf("xephyr options: Audit %d out of range: use 0..4", o.Audit)
	}
	if o.Audit > 0 {
		args = append(args, "-audit", strconv.Itoa(o.Audit))
	}
	for _, a := range o.Extra {
		if why, ok := refusedExtra[a]; ok {
			return nil, fmt.Errorf("xephyr options: Extra must not contain %s: %s", a, why)
		}
		if strings.HasPrefix(a, ":") {
			return nil, fmt.Errorf("xephyr options: Extra must not name a display (%q): Start picks one with -displayfd", a)
		}
		if strings.ContainsRune(a, 0) {
			return nil, errors.New("xephyr options: Extra must not contain NUL bytes")
		}
	}
	return append(args, o.Extra...), nil
}

func checkScreen(s string) error {
	m := screenRE.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("xephyr options: Screen %q is not WIDTHxHEIGHT or WIDTHxHEIGHTxDEPTH, e.g. 1280x1024x24", s)
	}
	for _, v := range m[1:3] {
		if n, _ := strconv.Atoi(v); n > 32767 {
			return fmt.Errorf("xephyr options: Screen %q: sizes must be at most 32767", s)
		}
	}
	if m[3] != "" {
		if d, _ := strconv.Atoi(m[3]); !validDepths[d] {
			return fmt.Errorf("xephyr options: Screen %q: depth must be one of 8, 15, 16, 24, 30, 32", s)
		}
	}
	return nil
}

// checkValue refuses values Xephyr would take for a flag, or that carry
// control characters.
func checkValue(field, v string) error {
	if strings.HasPrefix(v, "-") {
		return fmt.Errorf("xephyr options: %s %q must not start with \"-\"", field, v)
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return fmt.Errorf("xephyr options: %s %q must not contain control characters", field, v)
	}
	return nil
}
