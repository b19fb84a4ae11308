package profile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Screen size limits ParseScreen accepts, in pixels per side.
const (
	MinScreenSide = 64
	MaxScreenSide = 16384
)

// ScreenDepths are the colour depths ParseScreen accepts.
var ScreenDepths = []int{8, 15, 16, 24, 32}

// Screen is the size of a nested X screen. Depth 0 means the X server's
// default.
type Screen struct {
	Width, Height, Depth int
}

// String formats s the way Xephyr's -screen option and profiles write it:
// "WIDTHxHEIGHT" or "WIDTHxHEIGHTxDEPTH".
func (s Screen) String() string {
	if s.Depth == 0 {
		return fmt.Sprintf("%dx%d", s.Width, s.Height)
	}
	return fmt.Sprintf("%dx%dx%d", s.Width, s.Height, s.Depth)
}

// ParseScreen parses "WIDTHxHEIGHT" or "WIDTHxHEIGHTxDEPTH" with sides from
// MinScreenSide to MaxScreenSide and a depth from ScreenDepths. Its error
// quotes s and says what a screen looks like.
func ParseScreen(s string) (Screen, error) {
	bad := func(why string) (Screen, error) {
		return Screen{}, fmt.Errorf("screen %q %s", s, why)
	}
	parts := strings.Split(s, "x")
	if len(parts) != 2 && len(parts) != 3 {
		return bad(`is not WIDTHxHEIGHT or WIDTHxHEIGHTxDEPTH (e.g. "1280x1024")`)
	}
	var n [3]int
	for i, p := range parts {
		if p == "" || len(p) > 5 || strings.Trim(p, "0123456789") != "" {
			return bad(`is not WIDTHxHEIGHT or WIDTHxHEIGHTxDEPTH (e.g. "1280x1024")`)
		}
		n[i], _ = strconv.Atoi(p) // at most 5 digits: cannot fail
	}
	sc := Screen{Width: n[0], Height: n[1], Depth: n[2]}
	if sc.Width < MinScreenSide || sc.Width > MaxScreenSide || sc.Height < MinScreenSide || sc.Height > MaxScreenSide {
		return bad(fmt.Sprintf("is out of range: width and height must be from %d to %d", MinScreenSide, MaxScreenSide))
	}
	if len(parts) == 3 && !slices.Contains(ScreenDepths, sc.Depth) {
		return bad(fmt.Sprintf("has depth %d; use one of %v", sc.Depth, ScreenDepths))
	}
	return sc, nil
}
