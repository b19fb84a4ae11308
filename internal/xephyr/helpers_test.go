package xephyr

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// wildEntry is a FamilyWild entry with an empty number: it matches every
// display, and an X server's -auth file ignores family and number anyway.
func wildEntry(c xauth.Cookie) xauth.Entry {
	return xauth.Entry{Family: xauth.FamilyWild, Name: xauth.CookieName, Data: c.Bytes()}
}

// writeAuth writes entries to a new 0600 file in a private temp dir.
func writeAuth(t testing.TB, name string, entries ...xauth.Entry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := xauth.WriteFile(p, entries); err != nil {
		t.Fatal(err)
	}
	return p
}

func newCookie(t testing.TB) xauth.Cookie {
	t.Helper()
	c, err := xauth.NewCookie()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hostX is an Xvfb standing in for the user's display.
type hostX struct {
	Num        int
	Display    string
	Cookie     xauth.Cookie // zero when started without -auth
	Xauthority string       // client file: Local(hostname) entry for Num, after a decoy
	PID        int
}

// Env is the environment for Xephyr and other clients of the host display.
func (h *hostX) Env() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + h.Display}
	if h.Xauthority != "" {
		env = append(env, "XAUTHORITY="+h.Xauthority)
	}
	return env
}

// startXvfb starts an Xvfb (testguest's, with -noreset so setxkbmap's
// changes survive its clients). withAuth gives it a cookie; without, it
// admits every local client.
func startXvfb(t testing.TB, screen string, withAuth bool) *hostX {
	t.Helper()
	h := &hostX{}
	opts := testguest.XvfbOptions{Screen: screen}
	if withAuth {
		h.Cookie = newCookie(t)
		opts.Xauthority = writeAuth(t, "xvfb.auth", wildEntry(h.Cookie))
	}
	x := testguest.StartXvfb(t, opts)
	h.Num, h.Display, h.PID = x.Num, x.Display, x.PID
	if withAuth {
		hn, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		// A decoy for another display first: the lookup must skip it.
		h.Xauthority = writeAuth(t, "host.Xauthority",
			xauth.LocalEntry(hn, h.Num+1, newCookie(t)),
			xauth.LocalEntry(hn, h.Num, h.Cookie))
	}
	return h
}

// startXephyr starts a nested server on host with a fresh cookie and
// registers Close as cleanup. Its stderr is logged only when the test fails.
func startXephyr(t testing.TB, host *hostX, o Options) (*Server, xauth.Cookie) {
	t.Helper()
	testguest.NeedProgram(t, "Xephyr", "xserver-xephyr")
	c := newCookie(t)
	if o.AuthFile == "" {
		o.AuthFile = writeAuth(t, "nested.auth", wildEntry(c))
	}
	if o.Env == nil {
		o.Env = host.Env()
	}
	stderr := testguest.NewLogBuffer(1 << 20)
	o.Stderr = stderr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("cleanup Close: %v", err)
		}
		if t.Failed() {
			t.Logf("Xephyr :%d stderr:\n%s", s.Display, stderr.String())
		}
	})
	return s, c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// processGone reports whether pid no longer exists (Start's waiter reaped it).
func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}
