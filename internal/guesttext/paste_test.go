package guesttext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPaste(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		dropped        int
	}{
		{"plain", "echo hello | wc -c", "echo hello | wc -c", 0},
		{"lines", "a\tb\r\nc\n", "a\tb\r\nc\n", 0},
		{"end of bracketed paste", "a\x1b[201~b", "a[201~b", 1},
		{"C0 and DEL", "\x00x\x07y\x08\x7fz\x1b", "xyz", 5},
		{"C1 as UTF-8", "a\u009b31mb\u0085", "a31mb", 4},
		{"8-bit CSI is not UTF-8", "a\x9b31mb", "a\uFFFD31mb", 0},
		{"invalid UTF-8", "\xff\xfe", "\uFFFD\uFFFD", 0},
		{"RTL text keeps its marks", "\u202bשלום\u202c \u200f!", "\u202bשלום\u202c \u200f!", 0},
		{"printable Unicode", "é中😀\u200d", "é中😀\u200d", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := Paste(tc.in)
			if got != tc.want || n != tc.dropped {
				t.Errorf("Paste(%q) = %q, %d; want %q, %d", tc.in, got, n, tc.want, tc.dropped)
			}
		})
	}
}

func FuzzPaste(f *testing.F) {
	for _, s := range []string{"", hostile, "a\x1b[201~b", "a\nb\tc\r\n", "\x9b\xff\u202e\u0085", strings.Repeat("é", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, n := Paste(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Paste(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r >= 0x7f && r <= 0x9f {
				t.Fatalf("Paste(%q) = %q: keeps control %U", s, got, r)
			}
		}
		if n < 0 || n > len(s) || len(got) > len(s)-n+2*strings.Count(got, "\uFFFD") {
			t.Fatalf("Paste(%q) = %q, %d: counts disagree", s, got, n)
		}
		if n == 0 && utf8.ValidString(s) && got != s {
			t.Fatalf("Paste(%q) changed text with nothing dropped: %q", s, got)
		}
		if again, m := Paste(got); again != got || m != 0 {
			t.Fatalf("Paste is not idempotent on %q: %q, %d", got, again, m)
		}
	})
}
