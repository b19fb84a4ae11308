package profile

import (
	"strings"
	"testing"
)

func TestParseDisplayKeys(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, p Profile)
	}{
		{"defaults: resizeable, no host grab, host keyboard", minimal, func(t *testing.T, p Profile) {
			if p.FixedSize || p.HostGrab || p.Fullscreen || p.DPI != 0 || !p.Keyboard.IsZero() || p.Color != "" {
				t.Errorf("defaults: %+v", p)
			}
		}},
		{"screen auto", minimal + "screen = \"auto\"\n", func(t *testing.T, p Profile) {
			if p.Screen != AutoScreen {
				t.Errorf("Screen %q, want %q", p.Screen, AutoScreen)
			}
		}},
		{"resizeable true is the default", minimal + "resizeable = true\n", func(t *testing.T, p Profile) {
			if p.FixedSize {
				t.Error("FixedSize set by resizeable = true")
			}
		}},
		{"layout without variant", minimal + "keyboard_layout = \"de\"\n", func(t *testing.T, p Profile) {
			if p.Keyboard != (Keyboard{Layout: "de"}) {
				t.Errorf("Keyboard %+v", p.Keyboard)
			}
		}},
		{"colour name", minimal + "color = \"DarkOrange\"\n", func(t *testing.T, p Profile) {
			if p.Color != "DarkOrange" {
				t.Errorf("Color %q", p.Color)
			}
		}},
		{"user title gets the mark", minimal + "title = \"[bank] login\"\n", func(t *testing.T, p Profile) {
			if p.Title != "[p] [bank] login" {
				t.Errorf("Title %q", p.Title)
			}
		}},
		{"marked user title stays", minimal + "title = \"[p] Firefox\"\n", func(t *testing.T, p Profile) {
			if p.Title != "[p] Firefox" {
				t.Errorf("Title %q", p.Title)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p", "p.toml", []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestParseDisplayKeysBad(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"dpi too small", minimal + "dpi = 5\n", `3:7: dpi 5 is out of range (10..1000); remove it to use the host screen's`},
		{"dpi string", minimal + "dpi = \"96\"\n", `3:7: dpi must be an integer, e.g. 96, not a string`},
		{"fullscreen string", minimal + "fullscreen = \"yes\"\n", `3:14: fullscreen must be true or false, not a string`},
		{"screen auto typo", minimal + "screen = \"Auto\"\n", `3:10: screen "Auto" is not WIDTHxHEIGHT`},
		{"layout with space", minimal + "keyboard_layout = \"us de\"\n", `3:19: keyboard_layout "us de" is not an XKB name`},
		{"empty layout", minimal + "keyboard_layout = \"\"\n", `3:19: keyboard_layout "" is empty; remove it to use the host's`},
		{"option flag", minimal + "keyboard_options = \"-option\"\n", `3:20: keyboard_options "-option" starts with "-"`},
		{"variant without layout", minimal + "keyboard_variant = \"nodeadkeys\"\n", `3:20: keyboard_variant needs keyboard_layout`},
		{"too many layouts", minimal + "keyboard_layout = \"us,de,fr,it,es\"\n", `3:19: keyboard_layout "us,de,fr,it,es" has 5 layouts; XKB holds at most 4`},
		{"too many variants", minimal + "keyboard_layout = \"de\"\nkeyboard_variant = \"a,b\"\n", `4:20: keyboard_variant "a,b" has more variants than keyboard_layout "de" has layouts`},
		{"bad hex colour", minimal + "color = \"#12345\"\n", `3:9: color "#12345" is not "#rrggbb" or an X colour name`},
		{"colour with control", minimal + "color = \"red\\n\"\n", `3:9: color "red\n" is not "#rrggbb"`},
		{"colour misspelt", minimal + "colour = \"red\"\n", `3:1: unknown key "colour" (did you mean "color"?)`},
		{"resizable misspelt", minimal + "resizable = false\n", `3:1: unknown key "resizable" (did you mean "resizeable"?)`},
		{"keyboard table", minimal + "keyboard = { layout = \"de\" }\n", `unknown key "keyboard`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p", "p.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.doc)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "p.toml:") {
				t.Errorf("error\n got  %s\n want p.toml:...%s...", err, tt.want)
			}
		})
	}
}

func TestMarkTitle(t *testing.T) {
	tests := []struct{ name, title, want string }{
		{"empty", "", "[web]"},
		{"plain", "Firefox", "[web] Firefox"},
		{"already marked", "[web] Firefox", "[web] Firefox"},
		{"only the mark", "[web]", "[web]"},
		{"another profile's mark", "[bank] login", "[web] [bank] login"},
		{"mark without space", "[web]Firefox", "[web] [web]Firefox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MarkTitle("web", tt.title); got != tt.want {
				t.Errorf("MarkTitle(web, %q) = %q, want %q", tt.title, got, tt.want)
			}
		})
	}
}

func TestValidColor(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"#c00", true}, {"#cc0000", true}, {"#CC0000", true}, {"#ccc000000", true}, {"#cccc00000000", true},
		{"red", true}, {"dark orange", true}, {"gray50", true},
		{"", false}, {"#", false}, {"#cc00", false}, {"#gg0000", false}, {"cc0000", true}, // a name's form; the server decides
		{" red", false}, {"red ", false}, {"9red", false}, {"rgb:ff/00/00", false}, {strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if err := ValidColor(tt.in); (err == nil) != tt.ok {
				t.Errorf("ValidColor(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
		})
	}
}
