package xauth

import (
	"net/netip"
	"strconv"
	"strings"
)

// Display is the key of an X display name: the family, address and number
// that xauth stores for it and that libxcb looks up when it connects.
type Display struct {
	Host    string // host part as written ("" for ":N"), brackets removed
	Family  Family
	Address []byte // host name for FamilyLocal, 4 or 16 bytes otherwise
	Number  string // display number in canonical decimal ("05" becomes "5")
	Screen  int    // screen number, 0 when absent
}

// String returns a canonical display name for d that ParseDisplay maps to the
// same key: "HOST/unix:N" for Local, "A.B.C.D:N" and "[V6]:N" otherwise, with
// ".S" when Screen is not 0.
func (d Display) String() string {
	var s string
	switch d.Family {
	case FamilyInternet, FamilyInternet6:
		if a, ok := netip.AddrFromSlice(d.Address); ok {
			s = a.String()
			if d.Family == FamilyInternet6 {
				s = "[" + s + "]"
			}
		}
	default:
		s = string(d.Address) + "/unix"
	}
	s += ":" + d.Number
	if d.Screen != 0 {
		s += "." + strconv.Itoa(d.Screen)
	}
	return s
}

// DisplayError reports a display name ParseDisplay cannot map to a key.
type DisplayError struct {
	Name   string
	Reason string
}

func (e *DisplayError) Error() string {
	return "bad X display name " + strconv.Quote(e.Name) + ": " + e.Reason
}

// DisplayName is a display name split into its parts, the syntax libxcb
// and xauth share: [PROTOCOL/]HOST:NUMBER[.SCREEN], where HOST may be an
// IPv6 address (in brackets or bare), "HOST/unix" names the local socket of
// HOST (as xauth lists entries), and a HOST starting with "/" is the path of
// a socket (launchd's "/tmp/launch-x/org.xquartz:0").
type DisplayName struct {
	Protocol string // as written before "/", e.g. "tcp"; "" when none
	Host     string // brackets removed; "" for ":N"; the path for a socket path
	Unix     bool   // a local socket named by "HOST/unix" or a path
	Number   int
	Screen   int // 0 when absent
}

// SplitDisplay splits a display name into its parts, checking only its
// syntax. It returns a *DisplayError for a name without ":", a number or
// screen that is not decimal digits, DECnet ("HOST::N"), malformed
// brackets and an empty protocol or "/unix" host.
func SplitDisplay(name string) (DisplayName, error) {
	bad := func(reason string) (DisplayName, error) {
		return DisplayName{}, &DisplayError{Name: name, Reason: reason}
	}
	colon := strings.LastIndexByte(name, ':')
	if colon < 0 {
		return bad("no \":\" before the display number")
	}
	host, rest := name[:colon], name[colon+1:]
	num, screen, hasScreen := strings.Cut(rest, ".")
	var d DisplayName
	var ok bool
	if d.Number, ok = decimal(num); !ok {
		return bad("display number must be decimal digits")
	}
	if hasScreen {
		if d.Screen, ok = decimal(screen); !ok {
			return bad("screen number must be decimal digits")
		}
	}
	if h, ok := strings.CutSuffix(host, "/unix"); ok {
		if h == "" || strings.ContainsAny(h, "/:") {
			return bad("host before \"/unix\" is empty or malformed")
		}
		d.Host, d.Unix = h, true
		return d, nil
	}
	if strings.HasPrefix(host, "/") {
		d.Host, d.Unix = host, true
		return d, nil
	}
	if p, h, ok := strings.Cut(host, "/"); ok {
		if p == "" || strings.Contains(h, "/") {
			return bad("malformed protocol prefix")
		}
		d.Protocol, host = p, h
	}
	if strings.HasSuffix(host, ":") && !strings.HasSuffix(host, "]:") {
		if _, err := netip.ParseAddr(host); err != nil {
			return bad("DECnet (\"::\") is not supported")
		}
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") || len(host) < 3 {
			return bad("unbalanced \"[\" in IPv6 address")
		}
		host = host[1 : len(host)-1]
		if !strings.Contains(host, ":") {
			return bad("brackets hold no IPv6 address")
		}
	}
	if strings.ContainsAny(host, "[]") {
		return bad("stray brackets")
	}
	d.Host = host
	return d, nil
}

// ParseDisplay maps a display name to the key xauth stores for it and libxcb
// looks up, given this machine's host name (os.Hostname). The forms:
//
//	:N[.S], unix:N, localhost:N,      Local, address hostname
//	127.0.0.1:N, [::1]:N, ::1:N
//	HOST/unix:N                       Local, address HOST
//	A.B.C.D:N, [::ffff:A.B.C.D]:N     Internet, 4 bytes
//	[V6]:N, V6:N                      Internet6, 16 bytes
//
// Only 127.0.0.1 and ::1 count as loopback, as in xauth and libxcb. Other host
// names, this machine's own name included (it may resolve to 127.0.1.1 or a
// LAN address, which xauth would store as Internet), would need name
// resolution, which this package does not do, and
// DECnet (HOST::N), protocol prefixes (tcp/HOST:N) and socket paths are not
// supported, as in xauth: all of these, and malformed names (SplitDisplay),
// give a *DisplayError.
func ParseDisplay(name, hostname string) (Display, error) {
	bad := func(reason string) (Display, error) {
		return Display{}, &DisplayError{Name: name, Reason: reason}
	}
	s, err := SplitDisplay(name)
	if err != nil {
		return Display{}, err
	}
	d := Display{Host: s.Host, Number: strconv.Itoa(s.Number), Screen: s.Screen}
	local := func(addr string) (Display, error) {
		if addr == "" {
			return bad("a local display needs this machine's host name")
		}
		d.Family, d.Address = FamilyLocal, []byte(addr)
		return d, nil
	}
	host := s.Host
	switch {
	case s.Protocol != "" || (s.Unix && strings.HasPrefix(host, "/")):
		return bad("protocol prefixes and socket paths are not supported")
	case s.Unix:
		return local(host)
	case host == "" || host == "unix" || strings.EqualFold(host, "localhost"):
		return local(hostname)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		if strings.Contains(host, ":") {
			return bad("malformed IPv6 address")
		}
		return bad("host name " + strconv.Quote(host) + " needs name resolution; use an IP address, localhost, or HOST/unix:N for a local display")
	}
	a = a.WithZone("").Unmap()
	switch {
	case a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || a == netip.IPv6Loopback():
		return local(hostname)
	case a.Is4():
		b := a.As4()
		d.Family, d.Address = FamilyInternet, b[:]
	default:
		b := a.As16()
		d.Family, d.Address = FamilyInternet6, b[:]
	}
	return d, nil
}

// decimal parses a non-empty run of ASCII digits that fits an int32.
func decimal(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 31)
	return int(n), err == nil
}

// Lookup returns the entry a client uses for the display (family, address,
// number), by libXau's XauGetBestAuthByAddr: an entry matches if either side
// is FamilyWild or family and address are equal, and if either number is
// empty or they are equal. With no names the first match wins; otherwise
// only entries whose Name is in names count, an earlier name beats a later
// one and the first entry wins among equals.
func Lookup(entries []Entry, family Family, address []byte, number string, names ...string) (Entry, bool) {
	best, bestRank := -1, len(names)
	for i, e := range entries {
		if !(family == FamilyWild || e.Family == FamilyWild ||
			(e.Family == family && string(e.Address) == string(address))) {
			continue
		}
		if !(number == "" || e.Number == "" || e.Number == number) {
			continue
		}
		if len(names) == 0 {
			return e, true
		}
		for rank := 0; rank < bestRank; rank++ {
			if names[rank] == e.Name {
				best, bestRank = i, rank
				break
			}
		}
		if bestRank == 0 {
			break
		}
	}
	if best < 0 {
		return Entry{}, false
	}
	return entries[best], true
}
