package xauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// secretForms are the ways a cookie's value could show up in text.
func secretForms(b []byte) []string {
	return []string{
		fmt.Sprintf("%x", b), fmt.Sprintf("%X", b), string(b),
		fmt.Sprintf("%v", b)[1:10], // "[0 1 2 3 ..." without the bracket
		fmt.Sprintf("%q", b)[1:9],
	}
}

func assertNoSecret(t *testing.T, name, out string, secret []byte) {
	t.Helper()
	for _, s := range secretForms(secret) {
		if strings.Contains(out, s) {
			t.Errorf("%s: output %q contains the secret (as %q)", name, out, s)
		}
	}
}

func TestCookieRedaction(t *testing.T) {
	c := Cookie{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f}
	type holder struct{ C Cookie }
	wrapped := fmt.Errorf("start server: %w", fmt.Errorf("cookie %v rejected", c))
	tests := []struct {
		name string
		got  func() string
	}{
		{"%v", func() string { return fmt.Sprintf("%v", c) }},
		{"%+v", func() string { return fmt.Sprintf("%+v", c) }},
		{"%s", func() string { return fmt.Sprintf("%s", c) }},
		{"%x", func() string { return fmt.Sprintf("%x", c) }},
		{"%X", func() string { return fmt.Sprintf("%X", c) }},
		{"%#v", func() string { return fmt.Sprintf("%#v", c) }},
		{"%q", func() string { return fmt.Sprintf("%q", c) }},
		{"%d", func() string { return fmt.Sprintf("%d", c) }},
		{"pointer %v", func() string { return fmt.Sprintf("%v", &c) }},
		{"in struct %+v", func() string { return fmt.Sprintf("%+v", holder{c}) }},
		{"in slice %x", func() string { return fmt.Sprintf("%x", []Cookie{c}) }},
		{"Sprint", func() string { return fmt.Sprint(c) }},
		{"Sprintln", func() string { return fmt.Sprintln("cookie", c) }},
		{"String", func() string { return c.String() }},
		{"GoString", func() string { return c.GoString() }},
		{"wrapped error", func() string { return wrapped.Error() }},
		{"unwrapped error", func() string { return errors.Unwrap(wrapped).Error() }},
		{"json", func() string { b, _ := json.Marshal(holder{c}); return string(b) }},
		{"slog text", func() string {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "cookie", c)
			return buf.String()
		}},
		{"slog json", func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "cookie", c)
			return buf.String()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.got()
			assertNoSecret(t, tt.name, out, c[:])
			if !strings.Contains(out, "redacted") {
				t.Errorf("output %q does not say it is redacted", out)
			}
		})
	}
}

func TestCookieHexAndBytes(t *testing.T) {
	c := cookieN(0xa0)
	if got, want := c.Hex(), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"; got != want {
		t.Errorf("Hex = %s, want %s", got, want)
	}
	b := c.Bytes()
	b[0] = 0
	if c[0] != 0xa0 {
		t.Error("Bytes returned the cookie's own storage")
	}
}

func TestNewCookie(t *testing.T) {
	a, err := NewCookie()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCookie()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a == (Cookie{}) {
		t.Error("two fresh cookies are equal or zero")
	}
	if h := a.Hex(); len(h) != 32 || strings.ToLower(h) != h {
		t.Errorf("Hex is not 32 lowercase digits: len %d", len(h))
	}
}

func TestParseCookieHex(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Cookie
		ok   bool
	}{
		{"lower", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", cookieN(0xa0), true},
		{"upper", "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF", cookieN(0xa0), true},
		{"short", "a0a1a2", Cookie{}, false},
		{"long", "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0", Cookie{}, false},
		{"non-hex", "g0a1a2a3a4a5a6a7a8a9aaabacadaeaf", Cookie{}, false},
		{"spaces", "a0a1a2a3a4a5a6a7 a8a9aaabacadaea", Cookie{}, false},
		{"empty", "", Cookie{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCookieHex(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if got != tt.want {
				t.Errorf("got a different cookie")
			}
			if err != nil && tt.in != "" && strings.Contains(err.Error(), tt.in[:6]) {
				t.Errorf("error %q repeats the input", err)
			}
			if err == nil && got.Hex() != strings.ToLower(tt.in) {
				t.Errorf("round trip: Hex = %s", got.Hex())
			}
		})
	}
}

func TestEntryRedaction(t *testing.T) {
	c := cookieN(0x40) // bytes are printable ASCII "@ABC...": catches %s leaks too
	e := LocalEntry("vm", 5, c)
	type holder struct{ E Entry }
	tests := []struct {
		name string
		got  func() string
	}{
		{"%v", func() string { return fmt.Sprintf("%v", e) }},
		{"%+v", func() string { return fmt.Sprintf("%+v", e) }},
		{"%s", func() string { return fmt.Sprintf("%s", e) }},
		{"%x", func() string { return fmt.Sprintf("%x", e) }},
		{"%#v", func() string { return fmt.Sprintf("%#v", e) }},
		{"%q", func() string { return fmt.Sprintf("%q", e) }},
		{"pointer", func() string { return fmt.Sprintf("%v", &e) }},
		{"slice %x", func() string { return fmt.Sprintf("%x", []Entry{e}) }},
		{"slice %+v", func() string { return fmt.Sprintf("%+v", []Entry{e, WildEntry(3, c)}) }},
		{"in struct %#v", func() string { return fmt.Sprintf("%#v", holder{e}) }},
		{"Sprint", func() string { return fmt.Sprint(e) }},
		{"error", func() string { return fmt.Errorf("merge %v: %w", e, errors.New("boom")).Error() }},
		{"json", func() string { b, _ := json.Marshal(holder{e}); return string(b) }},
		{"slog json", func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "entry", e)
			return buf.String()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.got()
			assertNoSecret(t, tt.name, out, c[:])
			if !strings.Contains(out, "redacted") || !strings.Contains(out, "vm") {
				t.Errorf("output %q lacks the redaction marker or the address", out)
			}
		})
	}
	if got, want := e.String(), `Local "vm":"5" "MIT-MAGIC-COOKIE-1" <redacted 16 bytes>`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}
