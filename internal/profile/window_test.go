package profile

import (
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "" = an error
		sym      uint32
	}{
		{"ctrl+shift+c", "ctrl+shift+c", 'c'},
		{"Control+Shift+V", "ctrl+shift+v", 'v'},
		{"shift+ctrl+c", "ctrl+shift+c", 'c'},
		{"super+c", "super+c", 'c'},
		{"alt+f12", "alt+f12", 0xffc9},
		{"ctrl+shift+insert", "ctrl+shift+insert", 0xff63},
		{"ctrl+1", "ctrl+1", '1'},
		{"c", "", 0},             // no modifier: would eat typing
		{"shift+c", "", 0},       // shift alone too
		{"ctrl+ctrl+c", "", 0},   // twice
		{"hyper+c", "", 0},       // unknown modifier
		{"ctrl+shift+", "", 0},   // no key
		{"ctrl+shift+cc", "", 0}, // not a key name
		{"ctrl+f13", "", 0},      // no such F key here
		{"ctrl+shift+é", "", 0},  // not ASCII
		{"", "", 0},
	} {
		k, err := ParseKey(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseKey(%q) = %v, want an error", tt.in, k)
			} else if !strings.Contains(err.Error(), `e.g. "ctrl+shift+c"`) {
				t.Errorf("ParseKey(%q) error %q does not show an example", tt.in, err)
			}
			continue
		}
		if err != nil || k.String() != tt.want || k.Keysym() != tt.sym {
			t.Errorf("ParseKey(%q) = %v (0x%x), %v; want %s (0x%x)", tt.in, k, k.Keysym(), err, tt.want, tt.sym)
		}
	}
}

func TestParseWindowKeys(t *testing.T) {
	p, err := Parse("p", "p.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	ck, pk := p.ClipboardKeys()
	if p.ClipboardOff || ck.String() != DefaultCopyKey || pk.String() != DefaultPasteKey || p.ClipboardLimit() != DefaultClipboardMax || p.WindowMaxWidth != 0 {
		t.Errorf("defaults: off %v, keys %v %v, max %d, window_max %dx%d", p.ClipboardOff, ck, pk, p.ClipboardLimit(), p.WindowMaxWidth, p.WindowMaxHeight)
	}
	p, err = Parse("p", "p.toml", []byte(minimal+"clipboard = false\nwindow_max = \"1500x1000\"\nclipboard_copy_key = \"super+c\"\nclipboard_max_bytes = 4096\n"))
	if err != nil {
		t.Fatal(err)
	}
	ck, _ = p.ClipboardKeys()
	if !p.ClipboardOff || ck.String() != "super+c" || p.ClipboardLimit() != 4096 || p.WindowMaxWidth != 1500 || p.WindowMaxHeight != 1000 {
		t.Errorf("set: %+v", p)
	}
}

func TestParseWindowKeysBad(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"window_max not a size", minimal + "window_max = \"big\"\n", `3:14: window_max "big" is not WIDTHxHEIGHT`},
		{"window_max with depth", minimal + "window_max = \"800x600x24\"\n", `3:14: window_max "800x600x24" is not WIDTHxHEIGHT`},
		{"clipboard string", minimal + "clipboard = \"no\"\n", `3:13: clipboard must be true or false, not a string`},
		{"bad key", minimal + "clipboard_copy_key = \"c\"\n", `3:22: clipboard_copy_key: key "c" needs ctrl, alt or super`},
		{"same keys", minimal + "clipboard_paste_key = \"ctrl+shift+c\"\n", `clipboard_copy_key and clipboard_paste_key are both "ctrl+shift+c"`},
		{"cap zero", minimal + "clipboard_max_bytes = 0\n", `3:23: clipboard_max_bytes 0 is out of range (1..16777216)`},
		{"cap huge", minimal + "clipboard_max_bytes = 1000000000\n", `clipboard_max_bytes 1000000000 is out of range`},
		{"key misspelt", minimal + "clipboard_key = \"ctrl+c\"\n", `unknown key "clipboard_key"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p", "p.toml", []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v\nwant an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"ctrl+shift+c", "super+f1", "alt+insert", "c", "ctrl++", "+", "CTRL+SHIFT+V"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if !k.Ctrl && !k.Alt && !k.Super {
			t.Errorf("ParseKey(%q) accepted a key without ctrl, alt or super", s)
		}
		back, err := ParseKey(k.String())
		if err != nil || back != k {
			t.Errorf("ParseKey(%q).String() = %q does not parse back: %v, %v", s, k.String(), back, err)
		}
		if k.Keysym() == 0 {
			t.Errorf("ParseKey(%q) has no keysym", s)
		}
	})
}
