// Command xhostile is the hostile X client of the hostile-guest suite
// (hostile_suite_e2e_test.go): the test builds it and runs it on the test
// guest against the session's DISPLAY and XAUTHORITY. It writes what it
// reached to files in $HOME, so the test can wait for it.
//
//	xhostile grab        GrabServer, write ~/grabbed, sleep for ever (a window manager that grabs)
//	xhostile flood N     open N-1 connections, then one that grabs (~/grabbed), then
//	                     stream PutImage requests on the others without end
//	                     (~/flood: "streams S"), never reading
//	xhostile bomb        create 64 MiB pixmaps until the server refuses one (~/bombed:
//	                     "refused after N"), then sleep for ever
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: xhostile grab|flood N|bomb"))
	}
	switch os.Args[1] {
	case "grab":
		grab(dial())
		select {}
	case "flood":
		n, err := strconv.Atoi(os.Args[len(os.Args)-1])
		if err != nil || n < 2 {
			fail(fmt.Errorf("flood needs a number of connections, at least 2: %v", err))
		}
		flood(n)
	case "bomb":
		bomb(dial())
		select {}
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "xhostile:", err)
	os.Exit(1)
}

func dial() *xgb.Conn {
	c, err := xgb.NewConn()
	if err != nil {
		fail(err)
	}
	return c
}

// note writes ~/name atomically.
func note(name, text string) {
	home, _ := os.UserHomeDir()
	tmp := filepath.Join(home, name+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(home, name)); err != nil {
		fail(err)
	}
}

func grab(c *xgb.Conn) {
	xproto.GrabServer(c)
	if _, err := xproto.GetInputFocus(c).Reply(); err != nil {
		fail(err)
	}
	note("grabbed", "yes\n")
}

// flood: n-1 connections, each with a pixmap and a GC to draw on, then a
// grab, then PutImage (160 KB each) on all of them for ever.
func flood(n int) {
	type target struct {
		c  *xgb.Conn
		p  xproto.Pixmap
		gc xproto.Gcontext
	}
	var ts []target
	for range n - 1 {
		c, err := xgb.NewConn()
		if err != nil {
			break // refused beyond the launcher's cap: stream on what we have
		}
		screen := xproto.Setup(c).DefaultScreen(c)
		p, err1 := xproto.NewPixmapId(c)
		gc, err2 := xproto.NewGcontextId(c)
		if err1 != nil || err2 != nil {
			c.Close()
			break
		}
		xproto.CreatePixmap(c, screen.RootDepth, p, xproto.Drawable(screen.Root), 200, 200)
		xproto.CreateGC(c, gc, xproto.Drawable(p), 0, nil)
		if _, err := xproto.GetInputFocus(c).Reply(); err != nil {
			c.Close()
			break
		}
		ts = append(ts, target{c, p, gc})
	}
	grab(dial())
	note("flood", fmt.Sprintf("streams %d\n", len(ts)))
	data := make([]byte, 200*200*4)
	for i := range data {
		data[i] = byte(i)
	}
	for _, t := range ts {
		go func() {
			screen := xproto.Setup(t.c).DefaultScreen(t.c)
			for {
				xproto.PutImage(t.c, xproto.ImageFormatZPixmap, xproto.Drawable(t.p), t.gc, 200, 200, 0, 0, 0, screen.RootDepth, data)
			}
		}()
	}
	select {}
}

// bomb creates 4096x4096 pixmaps (64 MiB at depth 24) until one is refused.
func bomb(c *xgb.Conn) {
	screen := xproto.Setup(c).DefaultScreen(c)
	for i := range 256 { // 16 GiB if nothing stops it
		id, err := xproto.NewPixmapId(c)
		if err != nil {
			fail(err)
		}
		err = xproto.CreatePixmapChecked(c, screen.RootDepth, id, xproto.Drawable(screen.Root), 4096, 4096).Check()
		var alloc xproto.AllocError
		if errors.As(err, &alloc) {
			note("bombed", fmt.Sprintf("refused after %d\n", i))
			return
		}
		if err != nil {
			fail(err)
		}
	}
	note("bombed", "never refused\n")
}
