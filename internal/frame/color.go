package frame

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
)

// Palette holds the default frame colours: distinct from each other, each
// readable with black or white text. A profile without a colour gets
// DefaultColor(name), one of these.
var Palette = []string{
	"#cc0000", // red
	"#f57900", // orange
	"#c4a000", // dark yellow
	"#4e9a06", // green
	"#06989a", // teal
	"#3465a4", // blue
	"#75507b", // purple
	"#c6468c", // pink
	"#8f5902", // brown
	"#555753", // grey
}

// DefaultColor is the colour of a profile that sets none: one of Palette,
// picked by a hash of the profile's name, so it is the same at every launch
// and on every machine.
func DefaultColor(profile string) string {
	h := fnv.New32a()
	h.Write([]byte(profile))
	return Palette[h.Sum32()%uint32(len(Palette))]
}

type color struct {
	pixel uint32
	dark  bool // white text reads better on it
}

// ParseHex parses "#rgb", "#rrggbb", "#rrrgggbbb" or "#rrrrggggbbbb" into
// 16-bit channels as XParseColor does: the digits are the most significant
// bits of each channel (#f00 is #f00000000000, not #ffff00000000 as in CSS),
// so a colour is the same here as for every other X program.
func ParseHex(s string) (r, g, b uint16, err error) {
	h := strings.TrimPrefix(s, "#")
	if len(h) == len(s) || len(h)%3 != 0 || len(h) == 0 || len(h) > 12 {
		return 0, 0, 0, fmt.Errorf("colour %q is not #rgb, #rrggbb, #rrrgggbbb or #rrrrggggbbbb", s)
	}
	n := len(h) / 3
	var ch [3]uint16
	for i := range ch {
		d := h[i*n : (i+1)*n]
		v, err := strconv.ParseUint(d, 16, 16)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("colour %q is not #rgb, #rrggbb, #rrrgggbbb or #rrrrggggbbbb", s)
		}
		ch[i] = uint16(v << (4 * (4 - n)))
	}
	return ch[0], ch[1], ch[2], nil
}

// allocColor resolves a colour (hex, or a name the server's colour database
// knows) to a pixel of the colormap.
func allocColor(c *xgb.Conn, cmap xproto.Colormap, spec string) (color, error) {
	var r, g, b uint16
	if strings.HasPrefix(spec, "#") {
		var err error
		if r, g, b, err = ParseHex(spec); err != nil {
			return color{}, fmt.Errorf("frame: %w", err)
		}
	} else {
		l, err := xproto.LookupColor(c, cmap, uint16(len(spec)), spec).Reply()
		if err != nil {
			return color{}, fmt.Errorf("frame: colour %q is not known to the host display's X server (see /etc/X11/rgb.txt): %w", spec, err)
		}
		r, g, b = l.ExactRed, l.ExactGreen, l.ExactBlue
	}
	a, err := xproto.AllocColor(c, cmap, r, g, b).Reply()
	if err != nil {
		return color{}, fmt.Errorf("frame: allocate colour %q: %w", spec, err)
	}
	// Relative luminance, roughly (sRGB weights on the gamma values).
	lum := (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)) / 65535
	return color{pixel: a.Pixel, dark: lum < 0.5}, nil
}
