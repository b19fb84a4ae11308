package guesttext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The escape sequence from issue 9: a title change, a colour and a
// cursor-position query the terminal answers on the user's shell.
const hostile = "\033]2;TITLE\007\033[31mRED\033[6n"

func TestLine(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"plain ASCII", "xauth: file /home/u/.Xauthority does not exist", "xauth: file /home/u/.Xauthority does not exist"},
		{"printable UTF-8 kept", "café 中文 ✓ 👍", "café 中文 ✓ 👍"},
		{"issue 9 escapes", hostile, "^[]2;TITLE^G^[[31mRED^[[6n"},
		{"newline and tab visible", "ok\nfake line\tx", "ok^Jfake line^Ix"},
		{"carriage return visible", "safe\rEVIL", "safe^MEVIL"},
		{"CR LF visible", "a\r\nb", "a^M^Jb"},
		{"NUL and C0", "\x00\x01\x1f", "^@^A^_"},
		{"DEL", "a\x7fb", "a^?b"},
		{"raw 8-bit CSI", "\x9b31m", `\x9b31m`},
		{"invalid UTF-8", "\xff\xfe\xc3", `\xff\xfe\xc3`},
		{"truncated rune", "é"[:1] + "x", `\xc3x`},
		{"UTF-8 surrogate half", "\xed\xa0\x80", `\xed\xa0\x80`},
		{"C1 CSI as UTF-8", "\u009b31m", `\u009b31m`},
		{"C1 NEL", "a\u0085b", `a\u0085b`},
		{"bidi override", "user\u202eexe.txt", `user\u202eexe.txt`},
		{"bidi isolates", "\u2066a\u2067b\u2068c\u2069", `\u2066a\u2067b\u2068c\u2069`},
		{"direction marks", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"zero width space and BOM", "a\u200bb\ufeff", `a\u200bb\ufeff`},
		{"line separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"tag characters", "\U000e0001\U000e0041", `\U000e0001\U000e0041`},
		{"joiners kept", "👨\u200d👩 क्\u200cष", "👨\u200d👩 क्\u200cष"},
		{"replacement char kept", "\ufffd", "\ufffd"},
		{"backslash not escaped", `C:\x9b`, `C:\x9b`},
		{"exactly LineMax", strings.Repeat("a", LineMax), strings.Repeat("a", LineMax)},
		{"one past LineMax", strings.Repeat("a", LineMax+1), strings.Repeat("a", LineMax-markerRoom) + "…[41 more bytes]"},
		{"long hostile", strings.Repeat("\033", 1000), strings.Repeat("^[", (LineMax-markerRoom)/2) + "…[764 more bytes]"},
		{"cut not inside a rune", "a" + strings.Repeat("中", 300), "a" + strings.Repeat("中", (LineMax-markerRoom-1)/3) + "…[429 more bytes]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Line(tt.in)
			if got != tt.want {
				t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
			}
			checkSafe(t, got, 0, LineMax)
		})
	}
}

func TestLineCap(t *testing.T) {
	long := strings.Repeat("k", 3000)
	if got := LineCap(long, 4096); got != long {
		t.Errorf("LineCap cut %d bytes under its cap of 4096", len(long))
	}
	if got := LineCap(long+"\033", 4096); got != long+"^[" {
		t.Errorf("LineCap(long+ESC) ends in %q", got[len(got)-5:])
	}
	if got := LineCap(long, 1000); len(got) != 1000-markerRoom+len("…[2040 more bytes]") || !strings.HasSuffix(got, "…[2040 more bytes]") {
		t.Errorf("LineCap(3000 bytes, 1000) = %d bytes ending %q", len(got), got[len(got)-20:])
	}
	if got := LineCap(long, 1); len(got) > 64 {
		t.Errorf("LineCap(s, 1) = %d bytes, want at most the least cap, 64", len(got))
	}
}

func TestBlock(t *testing.T) {
	many := strings.Repeat("line\n", BlockLines+10)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"lines and tabs kept", "a\tb\nc\n", "a\tb\nc\n"},
		{"no final newline", "a\nb", "a\nb"},
		{"issue 9 escapes on two lines", hostile + "\n" + hostile + "\n", "^[]2;TITLE^G^[[31mRED^[[6n\n^[]2;TITLE^G^[[31mRED^[[6n\n"},
		{"CR LF read as newline", "a\r\nb\r\n", "a\nb\n"},
		{"lone CR visible", "100%\r  5%\n", "100%^M  5%\n"},
		{"CR at the end visible", "a\r", "a^M"},
		{"C1 and invalid", "\u009b\x9b\n", "\\u009b\\x9b\n"},
		{"each line capped", strings.Repeat("x", LineMax+5) + "\nok\n", strings.Repeat("x", LineMax-markerRoom) + "…[45 more bytes]\nok\n"},
		{"line count capped", many, strings.Repeat("line\n", BlockLines) + "…[50 more bytes]\n"},
		{"exactly BlockLines", strings.Repeat("l\n", BlockLines), strings.Repeat("l\n", BlockLines)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Block(tt.in)
			if got != tt.want {
				t.Errorf("Block(%q) = %q, want %q", tt.in, got, tt.want)
			}
			checkSafe(t, got, keepTab|keepNewline, (BlockLines+1)*(LineMax+1))
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name string
		in   int
		want int
		ok   bool
	}{
		{"zero", 0, 0, true},
		{"one", 1, 1, true},
		{"signal-like", 130, 130, true},
		{"max", 255, 255, true},
		{"256 would read as 0", 256, 1, false},
		{"uint32 max", 1<<32 - 1, 1, false},
		{"negative", -1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Status(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Status(%d) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// checkSafe fails unless s is valid UTF-8, holds no control bytes but those
// m keeps, no hidden runes, and is at most max bytes.
func checkSafe(t testing.TB, s string, m mode, max int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("not valid UTF-8: %q", s)
	}
	if len(s) > max {
		t.Fatalf("%d bytes, cap %d: %q", len(s), max, s)
	}
	for i, r := range s {
		switch {
		case r == '\t' && m&keepTab != 0, r == '\n' && m&keepNewline != 0:
		case r < 0x20 || r == 0x7f || hidden(r):
			t.Fatalf("control %U at byte %d of %q", r, i, s)
		}
	}
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"", hostile, "a\nb\tc\r\n", "\x9b\xff\u202e\u2066", strings.Repeat("é", 400), "\U000e0001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Line(s)
		checkSafe(t, got, 0, LineMax)
		if isPlain(s, 0) && len(s) <= LineMax && got != s {
			t.Fatalf("Line changed plain text %q to %q", s, got)
		}
		b := Block(s)
		checkSafe(t, b, keepTab|keepNewline, (BlockLines+1)*(LineMax+1))
	})
}
