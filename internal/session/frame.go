package session

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/frame"
	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// framePlan is the trust frame of profile p's window: everything on it
// comes from the profile and the host-side resolved guest, nothing from the
// guest. x is the profile's Xephyr options (screen size, fullscreen).
func framePlan(p profile.Profile, g *guest.Target, x xephyr.Options) frame.Options {
	o := frame.Options{
		Title:     x.Title,
		Instance:  x.Name,
		Class:     "Xephyr", // what Xephyr's own window had: window manager rules keep working
		Label:     frameLabel(p.Name, g),
		Color:     p.Color,
		MaxWidth:  p.WindowMaxWidth,
		MaxHeight: p.WindowMaxHeight,
		// Xephyr's -fullscreen would fight the frame for the screen: the
		// frame covers it instead, and Xephyr fills the frame.
		Fullscreen: x.Fullscreen,
		FixedSize:  p.FixedSize,
	}
	if o.Color == "" {
		o.Color = frame.DefaultColor(p.Name)
	}
	if sc, err := profile.ParseScreen(x.Screen); err == nil {
		o.Width, o.Height = sc.Width, sc.Height
	} else {
		o.Width, o.Height = 640, 480 // Xephyr's own default
	}
	if !p.ClipboardOff {
		ck, pk := p.ClipboardKeys()
		o.Keys = []frame.Key{frameKey(keyCopy, ck), frameKey(keyPaste, pk)}
	}
	return o
}

// The names of the frame's keys.
const (
	keyCopy  = "copy"
	keyPaste = "paste"
)

func frameKey(name string, k profile.Key) frame.Key {
	var mods uint16
	for _, m := range []struct {
		on  bool
		bit uint16
	}{{k.Ctrl, xproto.ModMaskControl}, {k.Shift, xproto.ModMaskShift}, {k.Alt, xproto.ModMask1}, {k.Super, xproto.ModMask4}} {
		if m.on {
			mods |= m.bit
		}
	}
	return frame.Key{Name: name, Mods: mods, Keysym: k.Keysym()}
}

// frameLabel names the profile and the guest as the host resolved it:
// "[web] alice@web-domu (10.0.0.5)", or "[demo] this machine".
func frameLabel(name string, g *guest.Target) string {
	if g == nil {
		return "[" + name + "] this machine"
	}
	l := fmt.Sprintf("[%s] %s@%s", name, g.User, g.Alias)
	if g.HostName != "" && g.HostName != g.Alias {
		l += " (" + g.HostName + ")"
	}
	return l
}

// describeFrame is the frame's line in --dry-run.
func describeFrame(o frame.Options, p profile.Profile) string {
	src := "profile"
	if p.Color == "" {
		src = "default for the name " + p.Name
	}
	line := fmt.Sprintf("a %s frame (%s) with the label %q, drawn by xvmview on the host display; Xephyr inside it (-parent FRAME)", o.Color, src, o.Label)
	if p.ClipboardOff {
		return line + "\nclipboard: off (clipboard = false)"
	}
	ck, pk := p.ClipboardKeys()
	return line + fmt.Sprintf("\nclipboard: %s copies the guest's CLIPBOARD to yours, %s offers yours for one paste (%s); text only, at most %d bytes; PRIMARY never",
		ck, pk, PasteWindow, p.ClipboardLimit())
}

// hostDisplay is the host display named by Xephyr's environment (nil:
// ours), as HostDisplayFrom reads it.
func hostDisplay(env []string) HostDisplay {
	get := os.Getenv
	if env != nil {
		get = func(k string) string {
			for i := len(env) - 1; i >= 0; i-- {
				if v, ok := strings.CutPrefix(env[i], k+"="); ok {
					return v
				}
			}
			return ""
		}
	}
	return HostDisplayFrom(get)
}

// openFrame draws the trust frame on the host display and points Xephyr's
// -parent at it.
func (r *runner) openFrame(ctx context.Context, xo *xephyr.Options) error {
	// Say first when Xephyr is missing: nothing else helps then.
	if _, err := xephyr.Find(xo.Binary); err != nil {
		return err
	}
	hd := hostDisplay(xo.Env)
	display := hd.Display
	if display == "" {
		return NoDisplayError{}
	}
	conn, err := xephyr.DialHost(ctx, display, hd.Xauthority)
	if err != nil {
		return &HostDisplayError{Display: display, Err: fmt.Errorf("draw the window frame: %w", err)}
	}
	o := r.pl.Frame
	o.Notice = func(msg string) { r.notice("%s", msg) }
	o.Info = r.phase
	f, err := frame.New(ctx, conn, o)
	if err != nil {
		return fmt.Errorf("draw the window frame on the host display %s: %w", display, err)
	}
	r.frame = f
	r.push("window frame", func(context.Context) error { f.Close(); return nil })
	xo.Parent = f.Parent()
	xo.Fullscreen = false
	r.phase(fmt.Sprintf("window frame 0x%x drawn on the host display %s", f.Window(), display))
	return nil
}

// frameDone is closed when the user closed the frame or it is gone.
func (r *runner) frameDone() <-chan struct{} {
	if r.frame == nil {
		return nil
	}
	return r.frame.Done()
}
