package testguest

import (
	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
	"github.com/jezek/xgb/xtest"
)

// Keycode returns the keycode whose first keysym is sym on c's keyboard,
// for pressing keys through XTEST; no such key fails the test.
func Keycode(tb TB, c *xgb.Conn, sym xproto.Keysym) byte {
	tb.Helper()
	s := xproto.Setup(c)
	m, err := xproto.GetKeyboardMapping(c, s.MinKeycode, byte(int(s.MaxKeycode)-int(s.MinKeycode)+1)).Reply()
	if err != nil {
		tb.Fatalf("keyboard mapping: %v", err)
	}
	per := int(m.KeysymsPerKeycode)
	for i := 0; (i+1)*per <= len(m.Keysyms); i++ {
		if m.Keysyms[i*per] == sym {
			return byte(int(s.MinKeycode) + i)
		}
	}
	tb.Fatalf("no keycode for keysym 0x%x", sym)
	return 0
}

// Keysyms of the modifiers tests press.
const (
	ControlL xproto.Keysym = 0xffe3
	ShiftL   xproto.Keysym = 0xffe1
)

// PressKeys presses syms in order on c's display through XTEST (xtest.Init
// done on c) and releases them in reverse, as the user types a chord such
// as Control_L, Shift_L, c; it returns once the server has handled them.
func PressKeys(tb TB, c *xgb.Conn, syms ...xproto.Keysym) {
	tb.Helper()
	root := xproto.Setup(c).DefaultScreen(c).Root
	codes := make([]byte, len(syms))
	for i, s := range syms {
		codes[i] = Keycode(tb, c, s)
	}
	for _, k := range codes {
		if err := xtest.FakeInputChecked(c, xproto.KeyPress, k, 0, root, 0, 0, 0).Check(); err != nil {
			tb.Fatalf("XTEST key press: %v", err)
		}
	}
	for i := len(codes) - 1; i >= 0; i-- {
		if err := xtest.FakeInputChecked(c, xproto.KeyRelease, codes[i], 0, root, 0, 0, 0).Check(); err != nil {
			tb.Fatalf("XTEST key release: %v", err)
		}
	}
}
