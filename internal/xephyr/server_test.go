package xephyr

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/res"
	"github.com/jezek/xgb/xproto"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/testguest"
)

// roundTrip proves the connection and its server are alive.
func roundTrip(t *testing.T, conn *xgb.Conn) {
	t.Helper()
	if _, err := xproto.GetInputFocus(conn).Reply(); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func clientCount(t *testing.T, conn *xgb.Conn) int {
	t.Helper()
	r, err := res.QueryClients(conn).Reply()
	if err != nil {
		t.Fatalf("X-Resource QueryClients: %v", err)
	}
	return len(r.Clients)
}

func TestStartDialRefuseClose(t *testing.T) {
	host := startXvfb(t, "1024x768x24", true)
	s, cookie := startXephyr(t, host, Options{Screen: "640x480x24", Title: "xephyr test"})
	ctx := testCtx(t)

	if s.Display < 0 || s.Display == host.Num {
		t.Fatalf("Display = %d, host is %d", s.Display, host.Num)
	}
	if s.DisplayName() != ":"+strconv.Itoa(s.Display) || s.Socket() != "/tmp/.X11-unix/X"+strconv.Itoa(s.Display) {
		t.Errorf("DisplayName %q Socket %q", s.DisplayName(), s.Socket())
	}
	if _, err := os.Stat(s.Socket()); err != nil {
		t.Fatalf("socket: %v", err)
	}

	held, err := Dial(ctx, s.Display, cookie)
	if err != nil {
		t.Fatalf("Dial with the cookie: %v", err)
	}
	defer held.Close()
	roundTrip(t, held)
	if sc := xproto.Setup(held).Roots[0]; sc.WidthInPixels != 640 || sc.HeightInPixels != 480 {
		t.Errorf("nested screen %dx%d, want 640x480", sc.WidthInPixels, sc.HeightInPixels)
	}
	if err := res.Init(held); err != nil {
		t.Fatalf("X-Resource: %v", err)
	}
	baseline := clientCount(t, held)

	if err := CheckRefusesCookieless(ctx, s.Display); err != nil {
		t.Fatalf("CheckRefusesCookieless: %v", err)
	}
	wrong := newCookie(t)
	if c, err := Dial(ctx, s.Display, wrong); err == nil {
		c.Close()
		t.Fatal("Dial with a wrong cookie succeeded")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Errorf("Dial with a wrong cookie: %v, want a refusal", err)
	} else if strings.Contains(err.Error(), cookie.Hex()) || strings.Contains(err.Error(), wrong.Hex()) {
		t.Errorf("error leaks a cookie: %v", err)
	}

	// A second client with the cookie connects and leaves. With -terminate
	// that would end the server if it were the only client; ours is held.
	probe, err := Dial(ctx, s.Display, cookie)
	if err != nil {
		t.Fatalf("probe Dial: %v", err)
	}
	roundTrip(t, probe)
	if n := clientCount(t, held); n != baseline+1 {
		t.Fatalf("clients with probe = %d, want %d", n, baseline+1)
	}
	probe.Close()
	// Wait until the server has processed the probe's departure.
	for clientCount(t, held) != baseline {
		select {
		case <-ctx.Done():
			t.Fatal("server never noticed the probe leaving")
		case <-time.After(20 * time.Millisecond):
		}
	}
	roundTrip(t, held)
	select {
	case <-s.Done():
		t.Fatalf("Xephyr exited after a probe left while we held a connection: %v", s.Err())
	default:
	}

	// Close ends the process and removes the socket; it is idempotent and
	// safe to call concurrently.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close #%d: %v", i, err)
		}
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close returned")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	if !processGone(s.PID) {
		t.Errorf("pid %d still exists after Close", s.PID)
	}
	// Gone, or made anew by a server that took the free display number
	// since (the tests of other packages start servers at the same time):
	// then something listens on it.
	if _, err := os.Lstat(s.Socket()); !errors.Is(err, os.ErrNotExist) {
		if listening, lerr := procfs.UnixListening(s.Socket()); lerr != nil || !listening {
			t.Errorf("socket %s after Close: %v, and nothing listens on it (%v): want it gone", s.Socket(), err, lerr)
		}
	}
}

// Without a held connection, the first client that leaves ends the server:
// the reason Start never probes and callers must Dial first.
func TestTerminateWhenOnlyClientLeaves(t *testing.T) {
	host := startXvfb(t, "800x600x24", true)
	s, cookie := startXephyr(t, host, Options{})
	ctx := testCtx(t)
	select {
	case <-s.Done():
		t.Fatalf("Xephyr exited before any client: %v", s.Err())
	default:
	}
	c, err := Dial(ctx, s.Display, cookie)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	roundTrip(t, c)
	c.Close()
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("Xephyr -terminate did not exit after its only client left")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after -terminate = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after exit: %v", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	auth := writeAuth(t, "auth", wildEntry(newCookie(t)))
	for _, bin := range []string{"xephyr-does-not-exist", filepath.Join(t.TempDir(), "Xephyr")} {
		t.Run(bin, func(t *testing.T) {
			_, err := Start(testCtx(t), Options{Binary: bin, AuthFile: auth})
			var nf *NotFoundError
			if !errors.As(err, &nf) {
				t.Fatalf("Start error = %v, want *NotFoundError", err)
			}
			if nf.Package != "xserver-xephyr" || nf.Program != bin {
				t.Errorf("NotFoundError = %+v", nf)
			}
		})
	}
}

func TestStartRefusesBadAuthFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	public := writeAuth(t, "public", wildEntry(newCookie(t)))
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(public, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing"), "no such file"},
		{"empty", empty, "empty"},
		{"directory", dir, "not a regular file"},
		{"readable by others", public, "0600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Binary "true" would "start" if the check were skipped.
			_, err := Start(testCtx(t), Options{Binary: "true", AuthFile: tt.path})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "-auth") {
				t.Fatalf("Start error = %v, want one about the -auth file containing %q", err, tt.want)
			}
		})
	}
}

func TestStartUnreachableHostDisplay(t *testing.T) {
	testguest.NeedProgram(t, "Xephyr", "xserver-xephyr")
	const unused = ":999"
	if _, err := os.Stat("/tmp/.X11-unix/X999"); err == nil {
		t.Skip("display :999 exists on this machine")
	}
	auth := writeAuth(t, "auth", wildEntry(newCookie(t)))
	s, err := Start(testCtx(t), Options{AuthFile: auth, Env: []string{"PATH=" + os.Getenv("PATH"), "DISPLAY=" + unused}})
	if err == nil {
		_ = s.Close()
		t.Fatal("Start succeeded without a host display")
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Start error = %v (%T), want *ExitError", err, err)
	}
	if !strings.Contains(err.Error(), "cannot open host display") {
		t.Errorf("Start error %q does not carry Xephyr's complaint", err)
	}
}

func TestCheckRefusesCookielessOpenServer(t *testing.T) {
	open := startXvfb(t, "800x600x24", false) // no -auth: access control off for local clients
	err := CheckRefusesCookieless(testCtx(t), open.Num)
	var oe *OpenServerError
	if !errors.As(err, &oe) {
		t.Fatalf("CheckRefusesCookieless on an open server = %v, want *OpenServerError", err)
	}
	if oe.Display != open.Num || oe.With != "no cookie" {
		t.Errorf("OpenServerError = %+v", oe)
	}

	closed := startXvfb(t, "800x600x24", true)
	if err := CheckRefusesCookieless(testCtx(t), closed.Num); err != nil {
		t.Errorf("CheckRefusesCookieless on a cookie server = %v, want nil", err)
	}
}

func TestDialNoServer(t *testing.T) {
	_, err := Dial(testCtx(t), 999, newCookie(t))
	if err == nil || !strings.Contains(err.Error(), ":999") {
		t.Fatalf("Dial to a missing display = %v, want an error naming :999", err)
	}
	err = CheckRefusesCookieless(testCtx(t), 999)
	var oe *OpenServerError
	if err == nil || errors.As(err, &oe) {
		t.Fatalf("CheckRefusesCookieless on a missing display = %v, want a connect error", err)
	}
}

// A client that connects and leaves before ours, even one refused for want
// of the cookie, does not end the server: -terminate waits TerminateDelay
// for another client, and ours comes. (Without the delay one cookieless
// connection ended every fresh server; the e2e tests saw sessions fail with
// "dial unix /tmp/.X11-unix/XN: no such file" when a stray client did that.)
func TestTerminateSurvivesEarlyStranger(t *testing.T) {
	host := startXvfb(t, "800x600x24", true)
	s, cookie := startXephyr(t, host, Options{})
	ctx := testCtx(t)
	if err := CheckRefusesCookieless(ctx, s.Display); err != nil {
		t.Fatalf("CheckRefusesCookieless: %v", err)
	}
	// Long enough for the server to have processed the strangers leaving
	// (it exited within this when it had no delay).
	time.Sleep(time.Second)
	c, err := Dial(ctx, s.Display, cookie)
	if err != nil {
		t.Fatalf("Dial after refused strangers: %v (server exited: %v)", err, s.Err())
	}
	defer c.Close()
	roundTrip(t, c)
	select {
	case <-s.Done():
		t.Fatalf("Xephyr exited after strangers left before our client: %v", s.Err())
	default:
	}
}
