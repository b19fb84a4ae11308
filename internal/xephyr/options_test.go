package xephyr

import (
	"slices"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	base := []string{"-displayfd", "3", "-auth", "/run/x/auth", "-reset", "-terminate", "5", "-extension", "XVideo"}
	tests := []struct {
		name string
		o    Options
		want []string // after base
	}{
		{"minimal", Options{}, []string{"-nolisten", "tcp"}},
		{"listen tcp", Options{ListenTCP: true}, []string{"-listen", "tcp"}},
		{"everything", Options{
			Screen: "1280x1024x24", Resizeable: true, NoHostGrab: true, Fullscreen: true,
			Title: "work: firefox", Name: "xvmview-work", DPI: 96,
			XKB:   XKB{Rules: "evdev", Model: "pc105", Layout: "de,us", Variant: "nodeadkeys,", Options: "grp:alt_shift_toggle"},
			Audit: 2, Extra: []string{"-output", "HDMI-1"},
		}, []string{"-nolisten", "tcp", "-screen", "1280x1024x24", "-resizeable", "-no-host-grab", "-fullscreen",
			"-title", "work: firefox", "-name", "xvmview-work", "-dpi", "96",
			"-xkb-rules", "evdev", "-xkb-model", "pc105", "-xkb-layout", "de,us", "-xkb-variant", "nodeadkeys,",
			"-xkb-options", "grp:alt_shift_toggle", "-audit", "2", "-output", "HDMI-1"}},
		{"screen without depth", Options{Screen: "800x600"}, []string{"-nolisten", "tcp", "-screen", "800x600"}},
		{"only layout", Options{XKB: XKB{Layout: "fr"}}, []string{"-nolisten", "tcp", "-xkb-layout", "fr"}},
		{"title with spaces and unicode", Options{Title: "Büro — mail"}, []string{"-nolisten", "tcp", "-title", "Büro — mail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.AuthFile = "/run/x/auth"
			got, err := tt.o.Args()
			if err != nil {
				t.Fatalf("Args: %v", err)
			}
			want := append(slices.Clone(base), tt.want...)
			if !slices.Equal(got, want) {
				t.Errorf("Args:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestArgsRejects(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"no auth file", Options{AuthFile: ""}, "AuthFile is required"},
		{"auth file like a flag", Options{AuthFile: "-ac"}, "AuthFile"},
		{"title flag", Options{Title: "-ac"}, "Title"},
		{"name flag", Options{Name: "-nolisten"}, "Name"},
		{"title newline", Options{Title: "a\nb"}, "control characters"},
		{"screen words", Options{Screen: "big"}, "Screen"},
		{"screen zero", Options{Screen: "0x600"}, "Screen"},
		{"screen negative", Options{Screen: "-800x600"}, "Screen"},
		{"screen bad depth", Options{Screen: "800x600x12"}, "depth"},
		{"screen too big", Options{Screen: "40000x600"}, "32767"},
		{"screen trailing", Options{Screen: "800x600x24 "}, "Screen"},
		{"screen offset", Options{Screen: "800x600+0+0"}, "Screen"},
		{"negative dpi", Options{DPI: -1}, "DPI"},
		{"xkb flag", Options{XKB: XKB{Layout: "-ac"}}, "XKB.Layout"},
		{"xkb space", Options{XKB: XKB{Options: "ctrl:nocaps grp:x"}}, "spaces"},
		{"audit range", Options{Audit: 9}, "Audit"},
		{"extra -ac", Options{Extra: []string{"-ac"}}, "-ac"},
		{"extra -auth", Options{Extra: []string{"-auth", "/tmp/x"}}, "-auth"},
		{"extra -noreset", Options{Extra: []string{"-noreset"}}, "-noreset"},
		{"extra nolisten local", Options{Extra: []string{"-nolisten", "local"}}, "-nolisten"},
		{"extra listen", Options{Extra: []string{"-listen", "tcp"}}, "-listen"},
		{"extra xdmcp", Options{Extra: []string{"-query", "host"}}, "XDMCP"},
		{"extra display", Options{Extra: []string{":7"}}, "display"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.o.AuthFile == "" && tt.name != "no auth file" {
				tt.o.AuthFile = "/run/x/auth"
			}
			got, err := tt.o.Args()
			if err == nil {
				t.Fatalf("Args = %q, want error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Args error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 16}
	for _, s := range []string{"first line\n", "\n", "second\nthird\n"} {
		_, _ = tb.Write([]byte(s))
	}
	if got := tb.Lines(8); got != "second; third" {
		t.Errorf("Lines(8) = %q, want only the last 16 bytes' lines", got)
	}
	if got := tb.Lines(1); got != "third" {
		t.Errorf("Lines(1) = %q", got)
	}
}

func TestParseRulesNames(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want XKB
	}{
		{"full", "evdev\x00pc105\x00de\x00nodeadkeys\x00ctrl:nocaps\x00", XKB{"evdev", "pc105", "de", "nodeadkeys", "ctrl:nocaps"}},
		{"empty variant and options", "evdev\x00pc105\x00us\x00\x00\x00", XKB{Rules: "evdev", Model: "pc105", Layout: "us"}},
		{"short", "base\x00pc104", XKB{Rules: "base", Model: "pc104"}},
		{"empty", "", XKB{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRulesNames([]byte(tt.in)); got != tt.want {
				t.Errorf("parseRulesNames(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseDisplay(t *testing.T) {
	tests := []struct {
		in              string
		network, addr   string
		local           bool
		number          string
		screen          int
		wantErrContains string
	}{
		{in: ":0", network: "unix", addr: "/tmp/.X11-unix/X0", local: true, number: "0"},
		{in: ":12.1", network: "unix", addr: "/tmp/.X11-unix/X12", local: true, number: "12", screen: 1},
		{in: "unix:3", network: "unix", addr: "/tmp/.X11-unix/X3", local: true, number: "3"},
		{in: "localhost:10.0", network: "tcp", addr: "localhost:6010", local: true, number: "10"},
		{in: "127.0.0.1:2", network: "tcp", addr: "127.0.0.1:6002", local: true, number: "2"},
		{in: "tcp/10.0.0.5:1", network: "tcp", addr: "10.0.0.5:6001", number: "1"},
		{in: "[::1]:1", network: "tcp", addr: "[::1]:6001", local: true, number: "1"},
		{in: "/tmp/launch-x/org.xquartz:0", network: "unix", addr: "/tmp/launch-x/org.xquartz:0", local: true, number: "0"},
		// The key is xauth's: only 127.0.0.1 and ::1 are this machine, as
		// in libxcb (this parser once took all of 127/8), and the number is
		// canonical, as xauth stores it.
		{in: "127.0.1.1:2", network: "tcp", addr: "127.0.1.1:6002", number: "2"},
		{in: "localhost:05", network: "tcp", addr: "localhost:6005", local: true, number: "5"},
		{in: "tcp/[::1]:1", network: "tcp", addr: "[::1]:6001", local: true, number: "1"},
		{in: "", wantErrContains: `no ":"`},
		{in: "host", wantErrContains: `no ":"`},
		{in: ":60000", wantErrContains: "display number"},
		{in: "other/unix:1", wantErrContains: "protocol"},
		{in: "inet6/[::1]:1", wantErrContains: "protocol"},
		{in: ":x", wantErrContains: "display number"},
		{in: ":1.x", wantErrContains: "screen"},
		{in: "foo/bar:1", wantErrContains: "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := parseDisplay(tt.in)
			if tt.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrContains) {
					t.Fatalf("parseDisplay(%q) error = %v, want one containing %q", tt.in, err, tt.wantErrContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.network != tt.network || d.address != tt.addr || d.local != tt.local || d.number != tt.number || d.screen != tt.screen {
				t.Errorf("parseDisplay(%q) = %+v", tt.in, d)
			}
		})
	}
}

func TestExitErrorText(t *testing.T) {
	e := &ExitError{Display: -1, Stderr: "Xephyr cannot open host display. Is DISPLAY set?"}
	if got := e.Error(); !strings.Contains(got, "during startup") || !strings.Contains(got, "cannot open host display") {
		t.Errorf("Error() = %q", got)
	}
}
