package session

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// AutoScreenPercent is the share of each side of the host screen that a
// profile with screen = "auto" gets.
const AutoScreenPercent = 80

// Fidelity says where the nested display's look and feel come from: the
// profile, the host display or Xephyr's defaults. Describe prints it; the
// CLI shows Warnings before a launch.
type Fidelity struct {
	Screen   string   // e.g. "1280x800 (auto: 80% of the host's 1600x1000)"
	DPI      string   // e.g. "120 (host screen)"
	Keyboard string   // e.g. "rules evdev, model pc105, layout de (host)"
	Color    string   // the profile's frame colour, "" for none
	Warnings []string // settings that will not do all the profile asks
}

// keymapWarning: measured on Debian 12's Xephyr 21.1.7, whose keyboard
// driver copies the host's core keymap at start and hands it to every key
// event; -xkb-* only set the _XKB_RULES_NAMES names, and keymaps uploaded
// with setxkbmap, xkbcomp or xmodmap do not take.
const keymapWarning = "the profile's keyboard_* keys set the nested display's XKB names, " +
	"but Xephyr (21.1) types with the host's keymap as it was when Xephyr started; " +
	"switch the host's layout before the launch to type with another"

// displayOptions fills the look-and-feel fields of o from profile p and the
// host display's facts (nil: unknown, so no DPI and keyboard from the host,
// and screen "auto" falls back to profile.DefaultScreen):
//
//   - Screen: p.Screen; "auto" = AutoScreenPercent of each host side, even,
//     at most the host's size; none when fullscreen (Xephyr uses the host's).
//   - Fullscreen, Resizeable (unless p.FixedSize), NoHostGrab (unless
//     p.HostGrab).
//   - DPI: p.DPI, else the host screen's, else Xephyr's default.
//   - XKB: the host's names with p.Keyboard's fields over them (a profile
//     layout brings its own variant).
//   - Title: p.Title with the trust mark "[NAME] " (profile.MarkTitle).
//
// It returns the Fidelity record, or an error naming the field when p holds
// a value Parse would have refused.
func displayOptions(o *xephyr.Options, p profile.Profile, host *xephyr.HostFacts) (Fidelity, error) {
	var fid Fidelity
	o.Title = profile.MarkTitle(p.Name, p.Title)
	o.Fullscreen = p.Fullscreen
	o.Resizeable = !p.FixedSize
	o.NoHostGrab = !p.HostGrab

	switch {
	case p.Fullscreen:
		o.Screen = ""
		fid.Screen = "fullscreen (the host screen's size)"
	case p.Screen == profile.AutoScreen && host != nil && host.Width > 0 && host.Height > 0:
		w, h := autoSide(host.Width), autoSide(host.Height)
		o.Screen = fmt.Sprintf("%dx%d", w, h)
		fid.Screen = fmt.Sprintf("%s (auto: %d%% of the host's %dx%d)", o.Screen, AutoScreenPercent, host.Width, host.Height)
	case p.Screen == profile.AutoScreen:
		o.Screen = profile.DefaultScreen
		fid.Screen = o.Screen + " (auto, but the host screen's size is unknown)"
	default:
		if _, err := profile.ParseScreen(p.Screen); err != nil && p.Screen != "" {
			return Fidelity{}, err
		}
		o.Screen = p.Screen
		fid.Screen = p.Screen + " (profile)"
		if p.Screen == "" {
			fid.Screen = "Xephyr's default"
		}
	}
	if o.Resizeable {
		fid.Screen += ", follows the window's size"
	}

	switch {
	case p.DPI != 0:
		if p.DPI < profile.MinDPI || p.DPI > profile.MaxDPI {
			return Fidelity{}, fmt.Errorf("dpi %d is out of range (%d..%d)", p.DPI, profile.MinDPI, profile.MaxDPI)
		}
		o.DPI = p.DPI
		fid.DPI = fmt.Sprintf("%d (profile)", p.DPI)
	case host != nil && host.DPI() >= profile.MinDPI && host.DPI() <= profile.MaxDPI:
		o.DPI = host.DPI()
		fid.DPI = fmt.Sprintf("%d (host screen: %d px over %d mm)", o.DPI, host.Width, host.WidthMM)
	default:
		o.DPI = 0
		fid.DPI = "Xephyr's default (75)"
	}

	var hostXKB xephyr.XKB
	if host != nil {
		hostXKB = host.XKB
		if err := checkXKB(hostXKB); err != nil {
			fid.Warnings = append(fid.Warnings, fmt.Sprintf("ignoring the host's keyboard names: %v", err))
			hostXKB = xephyr.XKB{}
		}
	}
	k := p.Keyboard
	if err := checkXKB(xephyr.XKB{Rules: k.Rules, Model: k.Model, Layout: k.Layout, Variant: k.Variant, Options: k.Options}); err != nil {
		return Fidelity{}, fmt.Errorf("keyboard: %w", err)
	}
	o.XKB = mergeXKB(hostXKB, k)
	fid.Keyboard = describeXKB(o.XKB, hostXKB, k)
	if !k.IsZero() {
		fid.Warnings = append(fid.Warnings, keymapWarning)
	}
	fid.Color = p.Color
	return fid, nil
}

// autoSide is AutoScreenPercent of a host side, rounded to an even number,
// kept within the host side and profile's screen limits.
func autoSide(host int) int {
	s := int(math.Round(float64(host)*AutoScreenPercent/200)) * 2
	s = max(s, profile.MinScreenSide)
	return min(s, host, profile.MaxScreenSide)
}

// checkXKB checks the non-empty fields of k.
func checkXKB(k xephyr.XKB) error {
	for _, f := range []struct{ name, v string }{
		{"rules", k.Rules}, {"model", k.Model}, {"layout", k.Layout}, {"variant", k.Variant}, {"options", k.Options},
	} {
		if f.v == "" {
			continue
		}
		if err := profile.ValidXKBName(f.v); err != nil {
			return fmt.Errorf("%s %w", f.name, err)
		}
	}
	return nil
}

// mergeXKB puts the profile's keyboard fields over the host's. A profile
// layout replaces the host's variant too: it belongs to the host's layout.
func mergeXKB(host xephyr.XKB, p profile.Keyboard) xephyr.XKB {
	k := host
	if p.Rules != "" {
		k.Rules = p.Rules
	}
	if p.Model != "" {
		k.Model = p.Model
	}
	if p.Layout != "" {
		k.Layout, k.Variant = p.Layout, p.Variant
	}
	if p.Options != "" {
		k.Options = p.Options
	}
	return k
}

// describeXKB lists the names in k and where each comes from.
func describeXKB(k, host xephyr.XKB, p profile.Keyboard) string {
	var parts []string
	for _, f := range []struct{ name, v, fromProfile string }{
		{"rules", k.Rules, p.Rules}, {"model", k.Model, p.Model}, {"layout", k.Layout, p.Layout},
		{"variant", k.Variant, p.Variant}, {"options", k.Options, p.Options},
	} {
		if f.v == "" {
			continue
		}
		src := "host"
		if f.fromProfile != "" || f.name == "variant" && p.Layout != "" {
			src = "profile"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", f.name, f.v, src))
	}
	if len(parts) == 0 {
		return "Xephyr's default names; keys as the host's keymap"
	}
	return strings.Join(parts, ", ")
}

// describe prints the fidelity lines of a --dry-run.
func (f Fidelity) describe(w io.Writer) {
	fmt.Fprintf(w, "screen:   %s\n", f.Screen)
	fmt.Fprintf(w, "dpi:      %s\n", f.DPI)
	fmt.Fprintf(w, "keyboard: %s\n", f.Keyboard)
	if f.Color != "" {
		fmt.Fprintf(w, "color:    %s (profile)\n", f.Color)
	}
	for _, warn := range f.Warnings {
		fmt.Fprintf(w, "warning:  %s\n", warn)
	}
}
