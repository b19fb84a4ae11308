package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/xvmview/xvmview/internal/xephyr"
)

// hostQueryTimeout bounds asking the host display for its size, DPI and
// keyboard: a display that does not answer quickly only costs the defaults.
const hostQueryTimeout = 3 * time.Second

// queryHost asks the host display (DISPLAY=display, with $XAUTHORITY or
// ~/.Xauthority as libX11 would) for its screen size, physical size and
// keyboard, for the nested display to match. A failure is a notice, and the
// launch goes on with Xephyr's defaults (nil). The connection stays open
// until release is called, after the launch: a host server whose last client
// leaves resets, and Xephyr connecting meanwhile would fail.
func (c *cli) queryHost(ctx context.Context, display string) (facts *xephyr.HostFacts, release func()) {
	ctx, cancel := context.WithTimeout(ctx, hostQueryTimeout)
	defer cancel()
	h, err := xephyr.OpenHost(ctx, display, hostXauthority())
	if err != nil {
		c.noticef("cannot read the host display's size and keyboard, using defaults: %v", err)
		return nil, func() {}
	}
	return &h.Facts, h.Close
}

// hostXauthority is where the host display's cookie is, as libXau finds it
// (and so Xephyr): $XAUTHORITY, else ~/.Xauthority.
func hostXauthority() string {
	if xa := os.Getenv("XAUTHORITY"); xa != "" {
		return xa
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".Xauthority")
	}
	return ""
}

// hostDisplayHint is what to do when Xephyr cannot open the host display.
func hostDisplayHint(display string) string {
	return fmt.Sprintf("Xephyr draws its window on DISPLAY=%s: check that you can open it (xdpyinfo) and that XAUTHORITY is right", display)
}
