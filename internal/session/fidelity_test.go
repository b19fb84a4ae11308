package session

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xephyr"
)

func TestDisplayOptions(t *testing.T) {
	deHost := &xephyr.HostFacts{
		Width: 1920, Height: 1080, WidthMM: 406, HeightMM: 229, // 120 dpi
		XKB: xephyr.XKB{Rules: "evdev", Model: "pc105", Layout: "de", Variant: "nodeadkeys", Options: "ctrl:nocaps"},
	}
	tests := []struct {
		name     string
		doc      string // profile keys after host and command
		host     *xephyr.HostFacts
		want     xephyr.Options // the fields displayOptions sets
		warnings int
		fidHas   []string
	}{
		{
			name: "defaults with an unknown host",
			want: xephyr.Options{Screen: "1280x1024", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)"},
		},
		{
			name:   "host's DPI and keyboard",
			host:   deHost,
			want:   xephyr.Options{Screen: "1280x1024", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)", DPI: 120, XKB: deHost.XKB},
			fidHas: []string{"120 (host screen", "layout de (host)", "variant nodeadkeys (host)"},
		},
		{
			name:   "screen auto: 80% of each side, even",
			doc:    `screen = "auto"`,
			host:   &xephyr.HostFacts{Width: 1366, Height: 768},
			want:   xephyr.Options{Screen: "1092x614", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)"},
			fidHas: []string{"auto: 80% of the host's 1366x768"},
		},
		{
			name: "screen auto on a tiny host stays within it",
			doc:  `screen = "auto"`,
			host: &xephyr.HostFacts{Width: 70, Height: 50},
			want: xephyr.Options{Screen: "64x50", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)"},
		},
		{
			name:   "screen auto without host facts",
			doc:    `screen = "auto"`,
			want:   xephyr.Options{Screen: "1280x1024", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)"},
			fidHas: []string{"size is unknown"},
		},
		{
			name: "fullscreen leaves the size to Xephyr",
			doc:  "fullscreen = true\nscreen = \"800x600\"",
			host: &xephyr.HostFacts{Width: 1920, Height: 1080},
			want: xephyr.Options{Fullscreen: true, Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)"},
		},
		{
			name: "profile wins: dpi, fixed size, host grab, title",
			doc:  "dpi = 96\nresizeable = false\nhost_grab = true\ntitle = \"[bank] login\"",
			host: &xephyr.HostFacts{Width: 1920, Height: 1080, WidthMM: 406},
			want: xephyr.Options{Screen: "1280x1024", DPI: 96, Title: "[p] [bank] login"},
		},
		{
			name:     "profile layout replaces the host's layout and variant",
			doc:      `keyboard_layout = "fr"`,
			host:     deHost,
			want:     xephyr.Options{Screen: "1280x1024", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)", DPI: 120, XKB: xephyr.XKB{Rules: "evdev", Model: "pc105", Layout: "fr", Options: "ctrl:nocaps"}},
			warnings: 1,
			fidHas:   []string{"layout fr (profile)", "model pc105 (host)"},
		},
		{
			name:     "profile options and model only",
			doc:      "keyboard_options = \"compose:ralt\"\nkeyboard_model = \"pc104\"",
			host:     deHost,
			want:     xephyr.Options{Screen: "1280x1024", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)", DPI: 120, XKB: xephyr.XKB{Rules: "evdev", Model: "pc104", Layout: "de", Variant: "nodeadkeys", Options: "compose:ralt"}},
			warnings: 1,
		},
		{
			name:     "unusable host names are dropped",
			host:     &xephyr.HostFacts{XKB: xephyr.XKB{Rules: "evdev", Layout: "de -auth x"}},
			want:     xephyr.Options{Screen: "1280x1024", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)"},
			warnings: 1,
		},
		{
			name: "absurd host DPI is ignored",
			host: &xephyr.HostFacts{Width: 1920, WidthMM: 1},
			want: xephyr.Options{Screen: "1280x1024", Resizeable: true, NoHostGrab: true, Title: "[p] xterm (local)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProfile(t, "p", "host = \"local\"\ncommand = [\"xterm\"]\n"+tt.doc)
			var got xephyr.Options
			fid, err := displayOptions(&got, p, tt.host)
			if err != nil {
				t.Fatal(err)
			}
			if got.Screen != tt.want.Screen || got.Fullscreen != tt.want.Fullscreen || got.Resizeable != tt.want.Resizeable ||
				got.NoHostGrab != tt.want.NoHostGrab || got.DPI != tt.want.DPI || got.XKB != tt.want.XKB || got.Title != tt.want.Title {
				t.Errorf("options\n got  %+v\n want %+v", got, tt.want)
			}
			if len(fid.Warnings) != tt.warnings {
				t.Errorf("warnings %q, want %d", fid.Warnings, tt.warnings)
			}
			var b bytes.Buffer
			fid.describe(&b)
			for _, s := range tt.fidHas {
				if !strings.Contains(b.String(), s) {
					t.Errorf("fidelity lacks %q:\n%s", s, b.String())
				}
			}
			got.AuthFile = "/x"
			if _, err := got.Args(); err != nil {
				t.Errorf("Args: %v", err)
			}
		})
	}
}

// TestDisplayOptionsRefuses: values Parse refuses, in a Profile built by
// hand.
func TestDisplayOptionsRefuses(t *testing.T) {
	tests := []struct {
		name string
		p    profile.Profile
		want string
	}{
		{"dpi", profile.Profile{Name: "p", Screen: "800x600", DPI: 5000}, "dpi 5000 is out of range"},
		{"keyboard", profile.Profile{Name: "p", Screen: "800x600", Keyboard: profile.Keyboard{Layout: "-x"}}, `keyboard: layout "-x" starts with "-"`},
		{"screen", profile.Profile{Name: "p", Screen: "big"}, `screen "big"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o xephyr.Options
			if _, err := displayOptions(&o, tt.p, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPlanFidelity: NewPlan applies the facts, and the dry run shows the
// flags and where they come from.
func TestPlanFidelity(t *testing.T) {
	p := testProfile(t, "web", "host = \"local\"\ncommand = [\"firefox\"]\nscreen = \"auto\"\ncolor = \"#cc0000\"\n")
	host := &xephyr.HostFacts{Width: 1600, Height: 1000, WidthMM: 339, HeightMM: 212, XKB: xephyr.XKB{Rules: "evdev", Layout: "de"}}
	pl, err := NewPlan(p, nil, Facts{RuntimeRoot: "/run/user/1/xvmview", Host: host})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := pl.Describe(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	xline := ""
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, "xephyr:") {
			xline = l
		}
	}
	args := strings.Fields(xline)
	for _, want := range [][]string{
		{"-screen", "1280x800"}, {"-resizeable"}, {"-no-host-grab"}, {"-dpi", "120"},
		{"-xkb-rules", "evdev"}, {"-xkb-layout", "de"}, {"-name", "xvmview-web"},
	} {
		i := slices.Index(args, want[0])
		if i < 0 || !slices.Equal(args[i:i+len(want)], want) {
			t.Errorf("xephyr line lacks %q: %s", want, xline)
		}
	}
	for _, want := range []string{"color:    #cc0000", "screen:   1280x800 (auto", "dpi:      120 (host screen"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if slices.Contains(args, "-fullscreen") {
		t.Errorf("-fullscreen without the profile asking: %s", xline)
	}
}
