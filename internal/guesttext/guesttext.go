// Package guesttext is the one way out for text that came from the guest: it
// makes every byte the guest sent safe to put on a terminal or in a log.
//
// The guest is hostile. Its program output, the error text of its commands,
// the signal names and exit statuses its sshd reports can all carry terminal
// escape sequences (a title change, a colour, a cursor-position query that the
// terminal answers on the user's shell), bytes that are not UTF-8 (0x9b is an
// 8-bit CSI to some terminals), a carriage return that overwrites what the line
// said, or Unicode bidi controls that make a line read differently than it is.
// Nothing of that passes raw. Controls are made visible, as cat -v and strvis do:
//
//	C0 controls and DEL          ^@ ^A ... ^[ (ESC) ... ^_ and ^? (so CR is ^M)
//	bytes that are not UTF-8     \x9b
//	C1 controls (U+0080..U+009F) \u009b
//	format controls (Cf: bidi    \u202e, \u2066, \u200e, \ufeff, \U000e0001
//	overrides and isolates, the
//	marks, invisible operators,
//	tags), U+2028 and U+2029
//
// Printable UTF-8 (é, 中, emoji) passes unchanged, and so do the joiners U+200C
// and U+200D, which scripts and emoji need and which move nothing. Backslash
// and caret are not escaped: the visible forms are for reading, not for
// decoding back.
//
// Line is for one-line contexts (an error, a notice, a signal name): newline
// and tab are made visible too, and the result is capped. Block is for
// multi-line text. Writer sanitizes a stream line by line, labels each line as
// the guest's and caps the volume. Status checks an exit status. Paste is
// for text the guest puts on the host's clipboard: it drops controls instead
// of showing them.
//
// It uses only the standard library.
package guesttext

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Caps. LineMax bounds Line's result and each line of Block's; BlockLines
// bounds the number of lines Block keeps.
const (
	LineMax    = 512
	BlockLines = 64
)

// markerRoom is the most a "…[N more bytes]" marker takes: "…[" (4 bytes),
// up to 20 digits, " more bytes]" (12 bytes).
const markerRoom = 40

// mode says which of tab and newline pass unchanged.
type mode uint8

const (
	keepTab mode = 1 << iota
	keepNewline
)

// Line returns s with every control made visible, newline and tab included,
// so the result is one line. A result that would be longer than LineMax bytes
// is cut, on a character boundary, and ends in "…[N more bytes]" counting the
// bytes of s not shown; the result is never longer than LineMax bytes.
func Line(s string) string {
	return LineCap(s, LineMax)
}

// LineCap is Line with a cap of n bytes instead of LineMax, for a line
// that quotes the guest within a longer text of the host's own, such as an
// error message; n is at least 64.
func LineCap(s string, n int) string {
	n = max(n, 64)
	if len(s) <= n && isPlain(s, 0) {
		return s
	}
	return string(appendCapped(nil, s, 0, n))
}

// Block returns s with every control but tab and newline made visible. A CR
// before a newline is dropped (text from a terminal ends its lines in CR LF);
// any other CR is made visible, since it would overwrite the line. Each line
// is capped as Line caps its result; past BlockLines lines the rest is
// replaced by one line "…[N more bytes]". A final newline is kept.
func Block(s string) string {
	if isPlain(s, keepTab|keepNewline) && len(s) <= LineMax && !strings.Contains(s, "\n") {
		return s
	}
	var b []byte
	rest := s
	for n := 0; rest != ""; n++ {
		if n == BlockLines {
			b = appendMore(b, len(rest))
			b = append(b, '\n')
			break
		}
		line, after, nl := strings.Cut(rest, "\n")
		if nl {
			line = strings.TrimSuffix(line, "\r")
		}
		b = appendCapped(b, line, keepTab, LineMax)
		if nl {
			b = append(b, '\n')
		}
		rest = after
	}
	return string(b)
}

// Status returns an exit status the guest reported when it is one a program
// can have, 0 to 255, and ok true. Any other value (an SSH exit-status is a
// uint32, and a hostile sshd may send 256, which the kernel would truncate to
// 0, or 2^32-1) is not passed on: Status returns 1, the generic failure, and
// ok false, so the caller can say what the guest claimed.
func Status(n int) (status int, ok bool) {
	if n < 0 || n > 255 {
		return 1, false
	}
	return n, true
}

// appendCapped appends s made visible under mode m to b, taking at most n
// bytes; when s does not fit, it cuts on a unit boundary and appends the
// marker, all within n.
func appendCapped(b []byte, s string, m mode, n int) []byte {
	start := len(b)
	b, i := appendVisible(b, s, m, start+n)
	if i == len(s) {
		return b
	}
	b, i = appendVisible(b[:start], s, m, start+n-markerRoom)
	return appendMore(b, len(s)-i)
}

func appendMore(b []byte, n int) []byte {
	b = append(b, "…["...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, " more bytes]"...)
}

// appendVisible appends s made visible under mode m to b while b stays within
// limit bytes. It returns b and how much of s it took.
func appendVisible(b []byte, s string, m mode, limit int) ([]byte, int) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			// Printable ASCII: copy the run at once.
			j := i + 1
			for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f {
				j++
			}
			if room := limit - len(b); j-i > room {
				j = i + room
			}
			if j <= i {
				return b, i
			}
			b = append(b, s[i:j]...)
			i = j
			continue
		}
		var unit [12]byte
		u, size := visibleUnit(unit[:0], s[i:], m)
		if len(b)+len(u) > limit {
			return b, i
		}
		b = append(b, u...)
		i += size
	}
	return b, i
}

// visibleUnit appends the visible form of the first character (or invalid
// byte) of s, which is not empty, and returns how many bytes of s it stands for.
func visibleUnit(u []byte, s string, m mode) ([]byte, int) {
	c := s[0]
	switch {
	case c == '\t' && m&keepTab != 0, c == '\n' && m&keepNewline != 0:
		return append(u, c), 1
	case c < 0x20:
		return append(u, '^', c+0x40), 1
	case c == 0x7f:
		return append(u, '^', '?'), 1
	case c < 0x80:
		return append(u, c), 1
	}
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && size == 1:
		const hex = "0123456789abcdef"
		return append(u, '\\', 'x', hex[c>>4], hex[c&0xf]), 1
	case hidden(r):
		return appendU(u, r), size
	}
	return append(u, s[:size]...), size
}

// hidden reports whether a (non-ASCII, valid) rune is a control or an
// invisible formatting character that can change how a line reads.
func hidden(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1
		return true
	case r == 0x200c || r == 0x200d: // joiners: needed by scripts and emoji
		return false
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

func appendU(u []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	if r > 0xffff {
		u = append(u, '\\', 'U')
		for shift := 28; shift >= 0; shift -= 4 {
			u = append(u, hex[(r>>shift)&0xf])
		}
		return u
	}
	u = append(u, '\\', 'u')
	for shift := 12; shift >= 0; shift -= 4 {
		u = append(u, hex[(r>>shift)&0xf])
	}
	return u
}

// isPlain reports whether s passes unchanged under mode m.
func isPlain(s string, m mode) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f || c == '\t' && m&keepTab != 0 || c == '\n' && m&keepNewline != 0 {
			i++
			continue
		}
		if c < 0x80 {
			return false
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || hidden(r) {
			return false
		}
		i += size
	}
	return true
}
