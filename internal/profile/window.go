package profile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Clipboard defaults and limits.
const (
	DefaultCopyKey      = "ctrl+shift+c"
	DefaultPasteKey     = "ctrl+shift+v"
	DefaultClipboardMax = 256 << 10 // bytes
	MaxClipboardMax     = 16 << 20
)

// Key is a key combination such as "ctrl+shift+c": modifiers and one key
// named by KeyNames' rules.
type Key struct {
	Ctrl, Shift, Alt, Super bool
	Name                    string // "a".."z", "0".."9", "f1".."f12", "insert"
}

// String writes k the way ParseKey reads it, modifiers in a fixed order.
func (k Key) String() string {
	var parts []string
	for _, m := range []struct {
		on   bool
		name string
	}{{k.Ctrl, "ctrl"}, {k.Shift, "shift"}, {k.Alt, "alt"}, {k.Super, "super"}} {
		if m.on {
			parts = append(parts, m.name)
		}
	}
	return strings.Join(append(parts, k.Name), "+")
}

// ParseKey parses "MOD+...+KEY" (case-insensitive): modifiers ctrl (or
// control), shift, alt, super; KEY a letter, a digit, f1..f12 or insert.
// At least one of ctrl, alt, super is required, so that the key cannot eat
// plain typing. Its error quotes s and says what a key looks like.
func ParseKey(s string) (Key, error) {
	bad := func(why string) (Key, error) {
		return Key{}, fmt.Errorf(`key %q %s (e.g. "ctrl+shift+c")`, s, why)
	}
	parts := strings.Split(strings.ToLower(s), "+")
	var k Key
	for _, p := range parts[:len(parts)-1] {
		var m *bool
		switch p {
		case "ctrl", "control":
			m = &k.Ctrl
		case "shift":
			m = &k.Shift
		case "alt":
			m = &k.Alt
		case "super":
			m = &k.Super
		default:
			return bad(fmt.Sprintf("has %q where a modifier (ctrl, shift, alt, super) belongs", p))
		}
		if *m {
			return bad(fmt.Sprintf("names %s twice", p))
		}
		*m = true
	}
	name := parts[len(parts)-1]
	switch {
	case len(name) == 1 && (name[0] >= 'a' && name[0] <= 'z' || name[0] >= '0' && name[0] <= '9'):
	case name == "insert":
	case len(name) >= 2 && name[0] == 'f' && slices.Contains(fKeys, name[1:]):
	default:
		return bad("does not end in a letter, a digit, f1..f12 or insert")
	}
	k.Name = name
	if !k.Ctrl && !k.Alt && !k.Super {
		return bad("needs ctrl, alt or super")
	}
	return k, nil
}

var fKeys = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}

// Keysym returns the X keysym of k's key.
func (k Key) Keysym() uint32 {
	switch {
	case k.Name == "insert":
		return 0xff63
	case len(k.Name) == 1:
		return uint32(k.Name[0])
	}
	n, _ := strconv.Atoi(k.Name[1:])
	return 0xffbe + uint32(n) - 1 // XK_F1
}

// checkWindow validates the frame and clipboard keys and fills them into p:
// window_max, clipboard, clipboard_copy_key, clipboard_paste_key,
// clipboard_max_bytes.
func (c *checker) checkWindow(p *Profile, f file) {
	if c.set("window_max") {
		sc, err := ParseScreen(f.WindowMax)
		if err != nil || sc.Depth != 0 {
			c.fail("window_max", -1, `window_max %q is not WIDTHxHEIGHT with sides from %d to %d (e.g. "1500x1000")`, f.WindowMax, MinScreenSide, MaxScreenSide)
		}
		p.WindowMaxWidth, p.WindowMaxHeight = sc.Width, sc.Height
	}
	p.ClipboardOff = c.set("clipboard") && !f.Clipboard
	for _, k := range []struct {
		key string
		val string
		dst *Key
	}{{"clipboard_copy_key", f.CopyKey, &p.CopyKey}, {"clipboard_paste_key", f.PasteKey, &p.PasteKey}} {
		if !c.set(k.key) {
			continue
		}
		key, err := ParseKey(k.val)
		if err != nil {
			c.fail(k.key, -1, "%s: %v", k.key, err)
		}
		*k.dst = key
	}
	if ck, pk := p.ClipboardKeys(); ck == pk {
		c.fail("clipboard_paste_key", -1, "clipboard_copy_key and clipboard_paste_key are both %q; give them different keys", ck)
	}
	if c.set("clipboard_max_bytes") {
		if f.ClipboardMax < 1 || f.ClipboardMax > MaxClipboardMax {
			c.fail("clipboard_max_bytes", -1, "clipboard_max_bytes %d is out of range (1..%d)", f.ClipboardMax, MaxClipboardMax)
		}
		p.ClipboardMax = int(f.ClipboardMax)
	}
}

// ClipboardKeys returns the copy and paste keys, defaults filled in.
func (p Profile) ClipboardKeys() (copyKey, pasteKey Key) {
	copyKey, pasteKey = p.CopyKey, p.PasteKey
	if copyKey == (Key{}) {
		copyKey = mustKey(DefaultCopyKey)
	}
	if pasteKey == (Key{}) {
		pasteKey = mustKey(DefaultPasteKey)
	}
	return copyKey, pasteKey
}

// ClipboardLimit returns the clipboard size cap in bytes, default filled in.
func (p Profile) ClipboardLimit() int {
	if p.ClipboardMax == 0 {
		return DefaultClipboardMax
	}
	return p.ClipboardMax
}

func mustKey(s string) Key {
	k, err := ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}
