package xauth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// CookieName is the only authorization protocol xvmview uses.
const CookieName = "MIT-MAGIC-COOKIE-1"

// Cookie is an MIT-MAGIC-COOKIE-1 secret: 16 random bytes. Its String and
// fmt verbs print "<redacted>", so a cookie logged by accident leaks nothing;
// Hex gives the value to the few places that must pipe it somewhere.
type Cookie [16]byte

// NewCookie returns a fresh cookie from crypto/rand (the mcookie equivalent).
// It returns an error only if the system's random source fails.
func NewCookie() (Cookie, error) {
	var c Cookie
	if _, err := rand.Read(c[:]); err != nil {
		return Cookie{}, fmt.Errorf("make cookie: %w", err)
	}
	return c, nil
}

// errCookieHex is returned by ParseCookieHex. It never contains the input.
var errCookieHex = errors.New("cookie must be 32 hex digits")

// ParseCookieHex parses 32 hex digits (either case) into a Cookie. The error
// never repeats the input, which may be a secret.
func ParseCookieHex(s string) (Cookie, error) {
	var c Cookie
	if len(s) != 2*len(c) {
		return Cookie{}, errCookieHex
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return Cookie{}, errCookieHex
	}
	return c, nil
}

// Hex returns the cookie as 32 lowercase hex digits. Never put the result in
// an argv, an environment variable, a log line or an error.
func (c Cookie) Hex() string { return hex.EncodeToString(c[:]) }

// Bytes returns a copy of the raw cookie bytes.
func (c Cookie) Bytes() []byte { b := c; return b[:] }

// String returns "<redacted>".
func (c Cookie) String() string { return "<redacted>" }

// GoString returns "xauth.Cookie(<redacted>)".
func (c Cookie) GoString() string { return "xauth.Cookie(<redacted>)" }

// Format prints "<redacted>" for every verb, %x and %v included.
func (c Cookie) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("<redacted>")) }

// MarshalText returns "<redacted>", so encoders such as encoding/json, which
// would otherwise print the 16 bytes, leak nothing.
func (c Cookie) MarshalText() ([]byte, error) { return []byte("<redacted>"), nil }

// LogValue returns "<redacted>" for log/slog.
func (c Cookie) LogValue() slog.Value { return slog.StringValue("<redacted>") }
