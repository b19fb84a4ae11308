package frame

import (
	"fmt"

	"github.com/jezek/xgb/xproto"
)

// ignoredMods are the lock modifiers a grabbed key works with: Caps Lock
// and Num Lock (Mod2 on every common keymap).
const ignoredMods = xproto.ModMaskLock | xproto.ModMask2

// keyMods are the modifier keys' bits of an event's state (Shift, Lock,
// Control, Mod1-Mod5), without the pointer buttons'.
const keyMods = 0xff

// grabKeys grabs each key on the frame with every combination of the lock
// modifiers. A key that is not on the keyboard, or that another client
// has grabbed, costs a notice.
func (f *Frame) grabKeys(keys []Key) {
	if len(keys) == 0 {
		return
	}
	setup := xproto.Setup(f.conn)
	first, count := setup.MinKeycode, int(setup.MaxKeycode)-int(setup.MinKeycode)+1
	m, err := xproto.GetKeyboardMapping(f.conn, first, byte(count)).Reply()
	if err != nil {
		f.notice(fmt.Sprintf("cannot read the keyboard map to grab the clipboard keys: %v", err))
		return
	}
	per := int(m.KeysymsPerKeycode)
	for _, k := range keys {
		code, ok := keycodeOf(m.Keysyms, per, first, k.Keysym)
		if !ok {
			f.notice(fmt.Sprintf("no key on this keyboard types the %s key's symbol 0x%x; it is not grabbed", k.Name, k.Keysym))
			continue
		}
		for _, lock := range []uint16{0, xproto.ModMaskLock, xproto.ModMask2, xproto.ModMaskLock | xproto.ModMask2} {
			err := xproto.GrabKeyChecked(f.conn, false, f.win, k.Mods|lock, code, xproto.GrabModeAsync, xproto.GrabModeAsync).Check()
			if err != nil {
				f.notice(fmt.Sprintf("cannot grab the %s key (another program holds it?): %v", k.Name, err))
				break
			}
		}
		f.keyMap[keyEvent{code, k.Mods}] = k.Name
	}
}

// keycodeOf finds the first keycode whose first two symbols (unshifted,
// shifted) include sym, or for a lower-case letter its capital.
func keycodeOf(syms []xproto.Keysym, per int, first xproto.Keycode, sym uint32) (xproto.Keycode, bool) {
	alt := sym
	if sym >= 'a' && sym <= 'z' {
		alt = sym - 'a' + 'A'
	}
	for i := 0; per > 0 && (i+1)*per <= len(syms); i++ {
		for j := 0; j < min(per, 2); j++ {
			s := uint32(syms[i*per+j])
			if s == sym || s == alt {
				return first + xproto.Keycode(i), true
			}
		}
	}
	return 0, false
}
