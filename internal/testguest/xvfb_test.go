package testguest

import (
	"context"
	"errors"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestXvfb(t *testing.T) {
	if _, err := exec.LookPath("xdpyinfo"); err != nil {
		SkipOrFail(t, &PrereqError{What: "program xdpyinfo", Hint: "install the x11-utils package"})
	}
	for _, tc := range []struct {
		name, screen, want string
	}{
		{"default screen", "", "dimensions:    1280x1024 pixels"},
		{"small screen", "640x480x24", "dimensions:    640x480 pixels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			x, err := NewXvfb(ctx, XvfbOptions{Screen: tc.screen})
			if err != nil {
				SkipOrFail(t, err)
			}
			defer func() { _ = x.Close() }()
			if x.Display != ":"+strconv.Itoa(x.Num) || x.PID <= 0 {
				t.Errorf("Display %q, Num %d, PID %d", x.Display, x.Num, x.PID)
			}
			cmd := exec.CommandContext(ctx, "xdpyinfo")
			cmd.Env = x.Env()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("xdpyinfo on %s: %v: %s\nXvfb said: %s", x.Display, err, out, x.Log())
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("xdpyinfo on %s lacks %q", x.Display, tc.want)
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if err := x.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if alive(x.PID) {
				t.Errorf("Xvfb pid %d alive after Close", x.PID)
			}
			cmd = exec.CommandContext(ctx, "xdpyinfo")
			cmd.Env = x.Env()
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("xdpyinfo on %s works after Close: %s", x.Display, out)
			}
		})
	}
}

func TestXvfbTwoAtOnce(t *testing.T) {
	a := StartXvfb(t, XvfbOptions{})
	b := StartXvfb(t, XvfbOptions{})
	if a.Display == b.Display {
		t.Errorf("two Xvfbs on %s", a.Display)
	}
}

func TestXvfbBadArgs(t *testing.T) {
	_, err := NewXvfb(context.Background(), XvfbOptions{Args: []string{"-no-such-option"}})
	if err == nil {
		t.Fatal("NewXvfb with a bad option succeeded")
	}
	if pe := (*PrereqError)(nil); errors.As(err, &pe) {
		SkipOrFail(t, err)
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("error does not quote Xvfb's output: %v", err)
	}
}

// TestXvfbSurvivesThreadExits: threads of the test binary ending (as
// xephyr.Start's confined thread does once its Xephyr has exited) do not
// take the Xvfb along through its Pdeathsig (startHeld).
func TestXvfbSurvivesThreadExits(t *testing.T) {
	x := StartXvfb(t, XvfbOptions{})
	// Many at once, each blocking a while: the runtime hands each a thread
	// of its pool (the one that forked Xvfb among them) or a new one.
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // no Unlock: the thread ends with the goroutine
			time.Sleep(20 * time.Millisecond)
		}()
	}
	wg.Wait()
	// SIGKILL by Pdeathsig is immediate; its reaping, a moment later.
	select {
	case <-x.waitDone:
		t.Fatalf("Xvfb pid %d died when threads of the test ended: %s", x.PID, x.Log())
	case <-time.After(time.Second):
	}
}
