package guesttext

import (
	"strings"
	"unicode/utf8"
)

// Paste returns the guest's clipboard text fit to put on the host's
// clipboard, and how many bytes of s it dropped. Text on a clipboard is
// pasted into terminals, where controls act: ESC [ 2 0 1 ~ ends a bracketed
// paste, so that the rest of the text runs as typed commands; 0x9b (or
// U+009B) is a CSI to some terminals. So Paste drops every C0 control but
// tab, newline and carriage return, DEL, and every C1 control (U+0080 to
// U+009F); bytes that are not UTF-8 become U+FFFD. Unlike Line and Block it
// drops rather than shows, since the result is data the user pastes, not
// text they read.
//
// Format controls (bidi marks, isolates and overrides, U+2028) pass: real
// right-to-left text needs them, and in a terminal they move no cursor and
// run nothing.
func Paste(s string) (text string, dropped int) {
	if pasteOK(s) {
		return s, 0
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c >= 0x20 && c != 0x7f || c == '\t' || c == '\n' || c == '\r' {
				b.WriteByte(c)
			} else {
				dropped++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r <= 0x9f: // C1
			dropped += size
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String(), dropped
}

// pasteOK reports whether Paste leaves s as it is.
func pasteOK(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r <= 0x9f {
			return false
		}
		i += size
	}
	return true
}
