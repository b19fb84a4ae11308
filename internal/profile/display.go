package profile

import (
	"fmt"
	"regexp"
	"strings"
)

// AutoScreen is the screen value that sizes the nested screen from the host
// screen when xvmview starts (a share of each side; see the session
// package).
const AutoScreen = "auto"

// DPI limits a profile may set.
const (
	MinDPI = 10
	MaxDPI = 1000
)

// Keyboard is a profile's keyboard, as XKB names the way setxkbmap takes
// them. An empty field keeps the host's value, except that a profile that
// sets Layout also sets Variant (the host's variant belongs to the host's
// layout); Parse refuses a Variant without a Layout.
type Keyboard struct {
	Rules, Model, Layout, Variant, Options string
}

// IsZero reports whether the profile keeps the host's keyboard entirely.
func (k Keyboard) IsZero() bool { return k == Keyboard{} }

// MarkTitle returns title with the trust mark "[NAME] " in front, unless it
// already starts with it. Every window title xvmview gives Xephyr goes
// through it, so that a profile can never title its window like another
// profile's ("[bank] ..." from profile web becomes "[web] [bank] ...").
func MarkTitle(name, title string) string {
	mark := "[" + name + "]"
	switch {
	case title == "" || title == mark:
		return mark
	case strings.HasPrefix(title, mark+" "):
		return title
	}
	return mark + " " + title
}

// xkbNameRE is the alphabet of XKB rules, model, layout, variant and
// option names, with "," between groups and options, ":" in options and
// "(" ")" "+" in layout specs such as "de(nodeadkeys)".
var xkbNameRE = regexp.MustCompile(`^[A-Za-z0-9_.:,()+-]{1,256}$`)

// ValidXKBName checks one XKB name such as a layout ("us,de"), variant
// (",nodeadkeys"), model ("pc105"), rules ("evdev") or option list
// ("ctrl:nocaps,compose:ralt"). Its error quotes the value.
func ValidXKBName(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%q is empty", v)
	case strings.HasPrefix(v, "-"):
		return fmt.Errorf("%q starts with \"-\"", v)
	case !xkbNameRE.MatchString(v):
		return fmt.Errorf("%q is not an XKB name (letters, digits and _ . : , ( ) + -, up to 256 characters)", v)
	}
	return nil
}

// xkbMaxGroups is the number of layouts XKB can hold at once.
const xkbMaxGroups = 4

var (
	hexColorRE  = regexp.MustCompile(`^#(?:[0-9A-Fa-f]{3}){1,4}$`)
	colorNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9 ]{0,63}$`)
)

// ValidColor checks a colour as X parses it: "#rgb", "#rrggbb" (or 3 or 4
// hex digits per channel), or a colour name from the X colour database
// such as "red", "dark orange" or "gray50". Names are checked for their
// form only: the database belongs to the X server that draws the colour.
// Its error quotes the value and says what a colour looks like.
func ValidColor(c string) error {
	if hexColorRE.MatchString(c) || colorNameRE.MatchString(c) && strings.TrimSpace(c) == c {
		return nil
	}
	return fmt.Errorf(`color %q is not "#rrggbb" or an X colour name such as "dark orange"`, c)
}

// checkDisplay validates the keys that shape the nested display and fills
// them into p: dpi, fullscreen, resizeable, host_grab, keyboard_*, color,
// and the trust mark of a title the profile sets.
func (c *checker) checkDisplay(p *Profile, f file) {
	if c.set("title") {
		p.Title = MarkTitle(p.Name, f.Title)
	}
	if c.set("dpi") {
		if f.DPI < MinDPI || f.DPI > MaxDPI {
			c.fail("dpi", -1, "dpi %d is out of range (%d..%d); remove it to use the host screen's", f.DPI, MinDPI, MaxDPI)
		}
		p.DPI = int(f.DPI)
	}
	p.Fullscreen = f.Fullscreen
	p.FixedSize = c.set("resizeable") && !f.Resizeable
	p.HostGrab = f.HostGrab

	kb := []struct {
		key string
		val string
		dst *string
	}{
		{"keyboard_rules", f.KeyboardRules, &p.Keyboard.Rules},
		{"keyboard_model", f.KeyboardModel, &p.Keyboard.Model},
		{"keyboard_layout", f.KeyboardLayout, &p.Keyboard.Layout},
		{"keyboard_variant", f.KeyboardVariant, &p.Keyboard.Variant},
		{"keyboard_options", f.KeyboardOptions, &p.Keyboard.Options},
	}
	for _, k := range kb {
		if !c.set(k.key) {
			continue
		}
		if err := ValidXKBName(k.val); err != nil {
			c.fail(k.key, -1, "%s %v; remove it to use the host's", k.key, err)
		}
		*k.dst = k.val
	}
	groups := strings.Count(f.KeyboardLayout, ",") + 1
	switch {
	case c.set("keyboard_variant") && !c.set("keyboard_layout"):
		c.fail("keyboard_variant", -1, `keyboard_variant needs keyboard_layout: a variant belongs to a layout, e.g. keyboard_layout = "de" with keyboard_variant = "nodeadkeys"`)
	case c.set("keyboard_layout") && groups > xkbMaxGroups:
		c.fail("keyboard_layout", -1, "keyboard_layout %q has %d layouts; XKB holds at most %d", f.KeyboardLayout, groups, xkbMaxGroups)
	case c.set("keyboard_variant") && strings.Count(f.KeyboardVariant, ",") >= groups:
		c.fail("keyboard_variant", -1, "keyboard_variant %q has more variants than keyboard_layout %q has layouts", f.KeyboardVariant, f.KeyboardLayout)
	}

	if c.set("color") {
		if err := ValidColor(f.Color); err != nil {
			c.fail("color", -1, "%v", err)
		}
		p.Color = f.Color
	}
}
