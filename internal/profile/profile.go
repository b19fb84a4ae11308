// Package profile decodes, validates and finds xvmview profiles: TOML files
// that say which guest to log into and what to run there. Decoding is strict
// (an unknown key is an error) and every problem in a file is reported as an
// *Error naming the file and line. Profiles are looked up in the user's
// profile directory first and then among the profiles built into xvmview.
//
// Parse is pure (bytes in, Profile out) so it can be fuzzed; Load and List
// add the file system.
package profile

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// LocalHost is the host value of a profile that runs its commands on this
// machine, without a guest.
const LocalHost = "local"

// DefaultScreen is the screen of a profile that sets none.
const DefaultScreen = "1280x1024"

// MaxXConnections is the most max_x_connections may be: Xephyr serves 255
// clients (its default -maxclients 256 counts the server itself), and
// xvmview holds one connection of its own.
const MaxXConnections = 250

// The transports: how the guest's X clients reach the nested display.
const (
	// TransportSSH carries X inside the launch's SSH connection: the guest
	// connects to a listener on its own loopback; nothing listens for X on
	// the host's network.
	TransportSSH = "ssh"
	// TransportTCP makes Xephyr listen on TCP: X traffic and the cookie cross
	// the network in clear. For host-only bridges, as the old script did.
	TransportTCP = "tcp"
)

// DefaultTransport is the transport of a remote profile that sets none.
const DefaultTransport = TransportSSH

// MaxSize is the largest profile file Parse accepts, in bytes.
const MaxSize = 64 << 10

// Profile is a decoded and validated profile. Parse fills in the defaults:
// Screen and Title are never empty, Title starts with "[NAME]" (MarkTitle),
// and Transport is DefaultTransport for a remote profile that sets none. A
// local profile (Local) has empty User, IdentityFile, DisplayHost and
// Transport and a zero Port.
type Profile struct {
	Name   string // file name without .toml
	Source string // file path, or "embedded:NAME.toml" for a built-in profile

	Description string
	Host        string // ssh_config Host alias, hostname or address; LocalHost for no guest
	User        string // "" = from ssh_config or the SSH default
	Port        int    // 0 = from ssh_config or the SSH default
	// IdentityFile is the path as written: it may start with "~/", which the
	// caller expands as ssh_config does.
	IdentityFile  string
	Command       []string // argv, never empty, no empty strings
	WindowManager []string // argv, or nil for none
	Screen        string   // "WIDTHxHEIGHT" or "WIDTHxHEIGHTxDEPTH", checked by ParseScreen, or AutoScreen
	Title         string
	Transport     string // TransportSSH or TransportTCP; "" for a local profile
	DisplayHost   string // "" = the local address of the SSH connection
	Icon          string
	Categories    []string

	// MaxXConnections caps the guest's X connections carried by the ssh
	// transport; 0 = the forward's default (guest.DefaultMaxConns).
	MaxXConnections int

	// The nested display's look and feel (display.go).
	DPI        int      // 0 = the host screen's
	Fullscreen bool     // false = a window of Screen's size
	FixedSize  bool     // resizeable = false: the screen keeps its size when the window is resized
	HostGrab   bool     // host_grab = true: Xephyr's Ctrl+Shift grab of keyboard and mouse
	Keyboard   Keyboard // overrides of the host's keyboard; zero = the host's
	Color      string   // "" or a colour checked by ValidColor, for a window frame

	// XephyrMemory is the nested X server's memory limit in bytes
	// (xephyr_memory, ParseMemory); 0 = sized from the screen.
	XephyrMemory int64
	// The trust frame and the clipboard (window.go).
	WindowMaxWidth, WindowMaxHeight int  // window_max; 0 = the host screen less a margin
	ClipboardOff                    bool // clipboard = false: no clipboard keys, no clip push/pull
	CopyKey, PasteKey               Key  // zero = DefaultCopyKey, DefaultPasteKey (ClipboardKeys)
	ClipboardMax                    int  // bytes; 0 = DefaultClipboardMax (ClipboardLimit)
	VM                              VM   // the libvirt domain behind the guest (vm.go); zero = none
}

// Local reports whether the profile runs on this machine rather than in a
// guest.
func (p Profile) Local() bool { return p.Host == LocalHost }

// file mirrors the keys of a profile file for strict decoding.
type file struct {
	Description   string   `toml:"description"`
	Host          string   `toml:"host"`
	User          string   `toml:"user"`
	Port          int64    `toml:"port"`
	IdentityFile  string   `toml:"identity_file"`
	Command       []string `toml:"command"`
	WindowManager []string `toml:"window_manager"`
	Screen        string   `toml:"screen"`
	Title         string   `toml:"title"`
	Transport     string   `toml:"transport"`
	DisplayHost   string   `toml:"display_host"`
	Icon          string   `toml:"icon"`
	Categories    []string `toml:"categories"`

	MaxXConns int64 `toml:"max_x_connections"`

	DPI             int64  `toml:"dpi"`
	Fullscreen      bool   `toml:"fullscreen"`
	Resizeable      bool   `toml:"resizeable"`
	HostGrab        bool   `toml:"host_grab"`
	KeyboardRules   string `toml:"keyboard_rules"`
	KeyboardModel   string `toml:"keyboard_model"`
	KeyboardLayout  string `toml:"keyboard_layout"`
	KeyboardVariant string `toml:"keyboard_variant"`
	KeyboardOptions string `toml:"keyboard_options"`
	Color           string `toml:"color"`
	XephyrMemory    string `toml:"xephyr_memory"`

	WindowMax    string `toml:"window_max"`
	Clipboard    bool   `toml:"clipboard"`
	CopyKey      string `toml:"clipboard_copy_key"`
	PasteKey     string `toml:"clipboard_paste_key"`
	ClipboardMax int64  `toml:"clipboard_max_bytes"`

	VM             string `toml:"vm"`
	VMURI          string `toml:"vm_uri"`
	ShutdownOnExit any    `toml:"shutdown_on_exit"` // true, false or "always"
	BootTimeout    int64  `toml:"boot_timeout"`
}

// keyTypes names every key of a profile file and what its value must be.
var keyTypes = map[string]string{
	"description":    "a string",
	"host":           "a string",
	"user":           "a string",
	"port":           "an integer from 1 to 65535",
	"identity_file":  "a string",
	"command":        `a list of strings, e.g. ["xterm"]`,
	"window_manager": `a list of strings, e.g. ["twm"]`,
	"screen":         `a string, e.g. "1280x1024"`,
	"title":          "a string",
	"transport":      `a string, "ssh" or "tcp"`,
	"display_host":   "a string",
	"icon":           "a string",
	"categories":     `a list of strings, e.g. ["Network"]`,

	"max_x_connections": "an integer, e.g. 100",

	"dpi":              "an integer, e.g. 96",
	"fullscreen":       "true or false",
	"resizeable":       "true or false",
	"host_grab":        "true or false",
	"keyboard_rules":   `a string, e.g. "evdev"`,
	"keyboard_model":   `a string, e.g. "pc105"`,
	"keyboard_layout":  `a string, e.g. "de" or "us,de"`,
	"keyboard_variant": `a string, e.g. "nodeadkeys"`,
	"keyboard_options": `a string, e.g. "ctrl:nocaps,compose:ralt"`,
	"color":            `a string, e.g. "#cc0000" or "dark orange"`,
	"xephyr_memory":    `a string, e.g. "512M" or "2G"`,

	"window_max":          `a string, e.g. "1500x1000"`,
	"clipboard":           "true or false",
	"clipboard_copy_key":  `a string, e.g. "ctrl+shift+c"`,
	"clipboard_paste_key": `a string, e.g. "ctrl+shift+v"`,
	"clipboard_max_bytes": "an integer, e.g. 262144",

	"vm":               `a string, the libvirt domain name, e.g. "web-domu"`,
	"vm_uri":           `a string, e.g. "qemu:///system" or "xen:///system"`,
	"shutdown_on_exit": `true, false or "always"`,
	"boot_timeout":     "an integer: seconds, e.g. 120",
}

// Error is a problem with one profile: a syntax error, an unknown key, a value
// of the wrong type, an invalid value or a missing key. Parse, Load and List
// return it (Load and List also return file system errors).
type Error struct {
	Source string // file path or "embedded:NAME.toml"
	Line   int    // 1-based; 0 when the problem has no single place, like a missing key
	Column int    // 1-based; 0 when unknown
	Key    string // the key concerned, "" if none
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.Source, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.Source, e.Msg)
	}
}

// Parse decodes and validates the profile called name from data, the
// contents of source (a path or "embedded:NAME.toml", used in messages).
// Every error it returns is an *Error whose text starts with source.
func Parse(name, source string, data []byte) (Profile, error) {
	if err := ValidName(name); err != nil {
		return Profile{}, &Error{Source: source, Msg: err.Error()}
	}
	if len(data) > MaxSize {
		return Profile{}, &Error{Source: source, Msg: fmt.Sprintf("file is %d bytes, more than the %d a profile may have", len(data), MaxSize)}
	}
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Profile{}, decodeError(source, err)
	}
	c := checker{source: source, data: data, pos: positions(data)}
	p := c.check(name, source, f)
	if c.err != nil {
		return Profile{}, c.err
	}
	return p, nil
}

// decodeError turns an error from the TOML decoder into an *Error.
func decodeError(source string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		de := &strict.Errors[0]
		line, col := de.Position()
		key := strings.Join(de.Key(), ".")
		shown := fmt.Sprintf("%q", key)
		if len(key) > 64 {
			shown = fmt.Sprintf("%.64q...", key)
		}
		msg := "unknown key " + shown
		if strings.Contains(de.Error(), "table") {
			msg = "unknown table " + shown + " (a profile has no tables)"
		}
		if s := suggest(key); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		if n := len(strict.Errors) - 1; n > 0 {
			msg += fmt.Sprintf(" and %d more unknown key%s", n, plural(n))
		}
		return &Error{Source: source, Line: line, Column: col, Key: key, Msg: msg}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		key := strings.Join(de.Key(), ".")
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 {
			if want, ok := keyTypes[k[0]]; ok {
				if found := foundKind(msg); found != "" {
					msg = fmt.Sprintf("%s must be %s, not %s", k[0], want, found)
				} else if !strings.Contains(msg, k[0]) {
					msg = k[0] + ": " + msg
				}
			}
		}
		return &Error{Source: source, Line: line, Column: col, Key: key, Msg: msg}
	}
	return &Error{Source: source, Msg: err.Error()}
}

var (
	decodeKindRE = regexp.MustCompile(`^cannot decode TOML ([a-z ]+) into`)
	storeKindRE  = regexp.MustCompile(`^cannot store (?:an? )?([a-z ]+) in`)
)

// foundKind extracts the TOML kind named in a type mismatch message of the
// decoder, with an article ("a string"), or "" if msg is another error.
func foundKind(msg string) string {
	var kind string
	if m := decodeKindRE.FindStringSubmatch(msg); m != nil {
		kind = m[1]
	} else if m := storeKindRE.FindStringSubmatch(msg); m != nil {
		kind = m[1]
	} else {
		return ""
	}
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// keyPlace says where a top-level key, its value and the elements of an
// array value are, as byte offsets into the document.
type keyPlace struct {
	key, value int
	elems      []int
}

// positions finds the top-level keys of a document the decoder accepted.
func positions(data []byte) map[string]keyPlace {
	out := make(map[string]keyPlace)
	var p unstable.Parser
	p.Reset(data)
	at := func(r unstable.Range, fallback int) int {
		if r.Length == 0 { // arrays have no range of their own
			return fallback
		}
		return int(r.Offset)
	}
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.KeyValue {
			continue
		}
		it := e.Key()
		if !it.Next() {
			continue
		}
		k := it.Node()
		var kp keyPlace
		kp.key = at(k.Raw, 0)
		v := e.Value()
		kp.value = at(v.Raw, kp.key)
		if v.Kind == unstable.Array {
			for c := v.Children(); c.Next(); {
				kp.elems = append(kp.elems, at(c.Node().Raw, kp.key))
			}
		}
		out[string(k.Data)] = kp
	}
	return out
}

// lineCol converts a byte offset in data to a 1-based line and column (in
// bytes, as the TOML decoder counts them).
func lineCol(data []byte, offset int) (line, col int) {
	before := data[:min(offset, len(data))]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = 1 + len(before) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, col
}

// checker validates a decoded file, keeping the first problem.
type checker struct {
	source string
	data   []byte
	pos    map[string]keyPlace
	err    *Error
}

func (c *checker) set(key string) bool {
	_, ok := c.pos[key]
	return ok
}

// fail records a problem with the value of key (element elem of an array
// value, or -1 for the whole value).
func (c *checker) fail(key string, elem int, format string, args ...any) {
	if c.err != nil {
		return
	}
	e := &Error{Source: c.source, Key: key, Msg: fmt.Sprintf(format, args...)}
	if kp, ok := c.pos[key]; ok {
		off := kp.value
		if elem >= 0 && elem < len(kp.elems) {
			off = kp.elems[elem]
		}
		e.Line, e.Column = lineCol(c.data, off)
	}
	c.err = e
}

func (c *checker) check(name, source string, f file) Profile {
	p := Profile{
		Name:          name,
		Source:        source,
		Description:   f.Description,
		Host:          f.Host,
		User:          f.User,
		IdentityFile:  f.IdentityFile,
		Command:       f.Command,
		WindowManager: f.WindowManager,
		Screen:        f.Screen,
		Title:         f.Title,
		Transport:     f.Transport,
		DisplayHost:   f.DisplayHost,
		Icon:          f.Icon,
		Categories:    f.Categories,
	}

	if s := f.Description; hasControl(s) {
		c.fail("description", -1, "description %q has a control character; it must be one line of text", s)
	}

	switch {
	case !c.set("host"):
		c.fail("host", -1, `missing key "host" (an ssh_config Host alias, a hostname, or %q for this machine)`, LocalHost)
	case f.Host == "":
		c.fail("host", -1, `host is empty; give an ssh_config Host alias, a hostname, or %q`, LocalHost)
	case hasSpaceOrControl(f.Host):
		c.fail("host", -1, "host %q has a space or control character", f.Host)
	case strings.HasPrefix(f.Host, "-"):
		c.fail("host", -1, "host %q starts with %q", f.Host, "-")
	case strings.Contains(f.Host, "@"):
		c.fail("host", -1, `host %q has an "@"; put the user name in user = "..."`, f.Host)
	case len(f.Host) > 255:
		c.fail("host", -1, "host is %d characters long, more than 255", len(f.Host))
	}

	c.checkArgv("command", f.Command, true)
	c.checkArgv("window_manager", f.WindowManager, false)

	if p.Local() {
		for _, k := range []string{"user", "port", "identity_file", "display_host", "max_x_connections"} {
			if c.set(k) {
				c.fail(k, -1, "%s is only for remote guests; remove it from this profile (host = %q)", k, LocalHost)
			}
		}
	} else {
		if c.set("user") {
			switch {
			case f.User == "":
				c.fail("user", -1, "user is empty; remove it to use the user from ssh_config")
			case hasSpaceOrControl(f.User) || strings.HasPrefix(f.User, "-") || strings.Contains(f.User, "@"):
				c.fail("user", -1, `user %q is not a user name (no spaces, control characters or "@", no leading "-")`, f.User)
			}
		}
		if c.set("port") && (f.Port < 1 || f.Port > 65535) {
			c.fail("port", -1, "port %d is out of range (1..65535)", f.Port)
		}
		p.Port = int(f.Port)
		if c.set("identity_file") && (f.IdentityFile == "" || hasControl(f.IdentityFile)) {
			c.fail("identity_file", -1, "identity_file %q is not a file name", f.IdentityFile)
		}
		if c.set("max_x_connections") {
			if f.MaxXConns < 1 || f.MaxXConns > MaxXConnections {
				c.fail("max_x_connections", -1, "max_x_connections %d is out of range (1..%d: Xephyr serves 255 clients, one is xvmview's own)",
					f.MaxXConns, MaxXConnections)
			}
			p.MaxXConnections = int(f.MaxXConns)
		}
		if c.set("display_host") {
			if err := validHostOrAddr(f.DisplayHost); err != nil {
				c.fail("display_host", -1, "display_host %q is not an IP address or hostname: %v", f.DisplayHost, err)
			}
		}
	}

	if c.set("screen") {
		// AutoScreen is a share of the host screen, worked out at launch.
		if _, err := ParseScreen(f.Screen); err != nil && f.Screen != AutoScreen {
			c.fail("screen", -1, "%v", err)
		}
	} else {
		p.Screen = DefaultScreen
	}

	if c.set("transport") {
		switch f.Transport {
		case TransportSSH, TransportTCP:
		default:
			c.fail("transport", -1, `transport %q is not one of: "ssh" (default), "tcp"`, f.Transport)
		}
	}
	switch {
	case p.Local():
		p.Transport = ""
	case p.Transport == "":
		p.Transport = DefaultTransport
	}
	if p.Transport == TransportTCP && c.set("max_x_connections") {
		c.fail("max_x_connections", -1, `max_x_connections applies to transport "ssh" only; remove it or the transport line`)
	}

	if c.set("title") {
		switch {
		case f.Title == "":
			c.fail("title", -1, "title is empty; remove it for the default title")
		case strings.HasPrefix(f.Title, "-"):
			c.fail("title", -1, "title %q starts with %q", f.Title, "-")
		case hasControl(f.Title):
			c.fail("title", -1, "title %q has a control character", f.Title)
		case utf8.RuneCountInString(f.Title) > 256:
			c.fail("title", -1, "title is longer than 256 characters")
		}
	} else if len(p.Command) > 0 {
		p.Title = DefaultTitle(name, p.Command[0], p.Host)
	}

	if c.set("icon") && (f.Icon == "" || hasControl(f.Icon)) {
		c.fail("icon", -1, "icon %q is not an icon name or file name", f.Icon)
	}
	for i, cat := range f.Categories {
		if !categoryRE.MatchString(cat) {
			c.fail("categories", i, "category %q is not a desktop entry category (letters, digits, \"-\" and \"_\", e.g. \"Network\")", cat)
		}
	}
	c.checkDisplay(&p, f)
	if c.set("xephyr_memory") {
		n, err := ParseMemory(f.XephyrMemory)
		if err != nil {
			c.fail("xephyr_memory", -1, "%v", err)
		}
		p.XephyrMemory = n
	}
	c.checkWindow(&p, f)
	c.checkVM(&p, f)
	return p
}

// Limits of xephyr_memory.
const (
	MinXephyrMemory = 64 << 20
	MaxXephyrMemory = 1 << 40
)

var memoryRE = regexp.MustCompile(`^([1-9][0-9]{0,6})(M|G|MiB|GiB)$`)

// ParseMemory parses a memory size such as "512M" or "2G" (binary units:
// M = MiB, G = GiB; "MiB" and "GiB" are accepted too) from MinXephyrMemory
// to MaxXephyrMemory. Its error quotes s and says what a size looks like.
func ParseMemory(s string) (int64, error) {
	m := memoryRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf(`xephyr_memory %q is not a size in M or G, e.g. "512M" or "2G"`, s)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64) // at most 7 digits: cannot fail
	switch m[2] {
	case "M", "MiB":
		n <<= 20
	default:
		n <<= 30
	}
	if n < MinXephyrMemory || n > MaxXephyrMemory {
		return 0, fmt.Errorf("xephyr_memory %q is out of range: from %dM to %dG", s, MinXephyrMemory>>20, MaxXephyrMemory>>30)
	}
	return n, nil
}

var categoryRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// DefaultTitle is the title of a profile that sets none:
// "[NAME] PROGRAM on HOST", or "[NAME] PROGRAM (local)" for a local profile,
// where PROGRAM is the last element of command[0].
func DefaultTitle(name, command0, host string) string {
	if host == LocalHost {
		return fmt.Sprintf("[%s] %s (local)", name, path.Base(command0))
	}
	return fmt.Sprintf("[%s] %s on %s", name, path.Base(command0), host)
}

// checkArgv validates an argv key: command (required) or window_manager.
func (c *checker) checkArgv(key string, argv []string, required bool) {
	switch {
	case !c.set(key):
		if required {
			c.fail(key, -1, "missing key %q (the program to run and its arguments, e.g. %s = [\"xterm\"])", key, key)
		}
		return
	case len(argv) == 0:
		if required {
			c.fail(key, -1, "%s is empty; give the program and its arguments, e.g. %s = [\"xterm\"]", key, key)
		} else {
			c.fail(key, -1, "%s is empty; remove it to run without one", key)
		}
		return
	}
	for i, a := range argv {
		switch {
		case a == "":
			c.fail(key, i, "%s[%d] is an empty string", key, i)
		case strings.IndexByte(a, 0) >= 0:
			c.fail(key, i, "%s[%d] has a NUL byte", key, i)
		}
	}
	a0 := argv[0]
	switch {
	case strings.ContainsAny(a0, " \t") && len(argv) == 1:
		fields := strings.Fields(a0)
		c.fail(key, 0, "%s[0] %q has spaces; %s is a list with one string per argument: %s = %s", key, a0, key, key, tomlList(fields))
	case hasSpaceOrControl(a0):
		c.fail(key, 0, "%s[0] %q has a space or control character; it must be a program name or path", key, a0)
	case strings.HasPrefix(a0, "-"):
		c.fail(key, 0, "%s[0] %q starts with %q; it must be a program name or path", key, a0, "-")
	}
}

// tomlList formats ss as a TOML array of basic strings.
func tomlList(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", s)
	}
	b.WriteByte(']')
	return b.String()
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s)
}

func hasSpaceOrControl(s string) bool {
	return hasControl(s) || strings.ContainsFunc(s, unicode.IsSpace)
}

// validHostOrAddr accepts an IP address or an RFC 1123 hostname.
func validHostOrAddr(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if s == "" {
		return errors.New("it is empty")
	}
	if len(s) > 253 {
		return errors.New("it is longer than 253 characters")
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("each dot-separated label must have 1 to 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New(`a label may not start or end with "-"`)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not a letter, digit or \"-\"", r)
			}
		}
	}
	return nil
}
