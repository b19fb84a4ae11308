// Command hostshot saves a PNG of a rectangle of the host display ($DISPLAY,
// $XAUTHORITY): the framed window as the user sees it, for docs/frame.png
// (scripts/frame-shot.sh).
//
//	go run ./scripts/hostshot OUT.png [X Y W H]
package main

import (
	"context"
	"fmt"
	"image/png"
	"os"
	"strconv"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hostshot:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 && len(args) != 5 {
		return fmt.Errorf("usage: hostshot OUT.png [X Y W H]")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := xephyr.DialHost(ctx, os.Getenv("DISPLAY"), xauth.FileName(os.Getenv))
	if err != nil {
		return err
	}
	defer c.Close()
	s := xproto.Setup(c).DefaultScreen(c)
	r := []int{0, 0, int(s.WidthInPixels), int(s.HeightInPixels)}
	for i, a := range args[1:] {
		if r[i], err = strconv.Atoi(a); err != nil {
			return fmt.Errorf("bad number %q", a)
		}
	}
	img, err := xephyr.Screenshot(c, r[0], r[1], r[2], r[3])
	if err != nil {
		return err
	}
	f, err := os.Create(args[0])
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
