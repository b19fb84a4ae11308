package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// TestRunRemote is the main story, for each transport: run against the
// guest, see the app's window in the nested display, check the cookie's
// reach, end the app and find nothing left behind.
func TestRunRemote(t *testing.T) {
	for _, transport := range []string{"ssh", "tcp"} {
		t.Run(transport, func(t *testing.T) { testRunRemote(t, transport) })
	}
}

func testRunRemote(t *testing.T, transport string) {
	w := newWorld(t, true)
	w.remoteProfile("e2e", transport)
	l := w.start("run", "e2e", "--verbose")
	s, cookie := w.session(l)
	// The display the guest's clients use.
	addr := fmt.Sprintf("%s:%d", w.g.HostAddr, s.Display)
	if transport == "ssh" {
		addr = "localhost" + s.GuestDisplay
	}

	t.Run("window drawn in the nested display", func(t *testing.T) {
		// The red window placed at +100+100, below twm's title bar.
		waitNested(t, s.Display, cookie, 20*time.Second, "no red window at (160,160) on the nested display", func(img *image.RGBA) bool {
			bright := func(x, y int) bool {
				c := img.RGBAAt(x, y)
				return c.R > 200 && c.G > 200 && c.B > 200
			}
			red := func(x, y int) bool { return isRed(img, x, y) }
			// The 185x110 window sits below twm's title bar,
			// whose white background shows twm managed the window.
			inside := red(160, 160) && red(120, 130) && red(270, 215)
			outside := !red(60, 60) && !red(320, 160) && !red(160, 260) && !red(700, 500)
			return inside && outside && bright(230, 104)
		})
	})

	port := fmt.Sprintf("( sport = :%d )", 6000+s.Display)
	if transport == "tcp" {
		t.Run("guest connects over TCP from its own address", func(t *testing.T) {
			out, err := exec.Command("ss", "-Htn", "state", "established", port).CombinedOutput()
			if err != nil {
				t.Fatalf("ss: %v: %s", err, out)
			}
			if !strings.Contains(string(out), w.g.Addr+":") {
				t.Errorf("no TCP connection from the guest %s to port %d:\n%s", w.g.Addr, 6000+s.Display, out)
			}
		})
	} else {
		t.Run("no X listener on the host's network; the guest uses its loopback", func(t *testing.T) {
			out, err := exec.Command("ss", "-Htln", port).CombinedOutput()
			if err != nil {
				t.Fatalf("ss: %v: %s", err, out)
			}
			if strings.TrimSpace(string(out)) != "" {
				t.Errorf("something listens on port %d:\n%s", 6000+s.Display, out)
			}
			gout, err := w.guestRun(`ss -Htln`, "")
			if err != nil || !strings.Contains(gout, "127.0.0.1:"+strconv.Itoa(6000+atoiDisplay(t, s.GuestDisplay))) {
				t.Errorf("no listener on the guest's loopback for %s (%v):\n%s", s.GuestDisplay, err, gout)
			}
			if !strings.Contains(l.stderr.String(), "inside the SSH connection") {
				t.Errorf("the launch does not report the ssh transport:\n%s", l.stderr.String())
			}
			if strings.Contains(l.stderr.String(), "in clear") {
				t.Errorf("the ssh transport warns about clear text:\n%s", l.stderr.String())
			}
		})
	}

	t.Run("guest client with the cookie connects, without or with a wrong one is refused", func(t *testing.T) {
		if out, err := w.guestRun("XAUTHORITY="+w.guestXauthority()+" xdpyinfo -display "+addr+" >/dev/null", ""); err != nil {
			t.Fatalf("guest client with the session's cookie was refused: %v: %s", err, out)
		}
		if out, err := w.guestRun("XAUTHORITY=/nonexistent xdpyinfo -display "+addr, ""); err == nil {
			t.Errorf("guest client without a cookie connected:\n%s", out)
		}
		wrong := fmt.Sprintf("ffff 0000 %04x %x 0012 %x 0010 %s\n", len(strconv.Itoa(s.Display)), strconv.Itoa(s.Display), xauth.CookieName, strings.Repeat("ab", 16))
		if out, err := w.guestRun(`f=$(mktemp) && xauth -q -f "$f" nmerge - && XAUTHORITY="$f" xdpyinfo -display `+addr+`; st=$?; rm -f "$f"; exit $st`, wrong); err == nil {
			t.Errorf("guest client with a wrong cookie connected:\n%s", out)
		}
	})

	t.Run("cookie in no argv or environment", func(t *testing.T) {
		checkNoCookieInProc(t, cookie)
	})

	t.Run("cookie not in the session log", func(t *testing.T) {
		path, err := latestLog(filepath.Join(w.home, ".local", "state", "xvmview"), "e2e")
		must(t, err)
		b, err := os.ReadFile(path)
		must(t, err)
		if !strings.Contains(string(b), "cookie written to the guest") {
			t.Errorf("log lacks the phases:\n%s", b)
		}
		for _, n := range [][]byte{[]byte(cookie.Hex()), []byte(strings.ToUpper(cookie.Hex())), cookie.Bytes()} {
			if bytes.Contains(b, n) {
				t.Errorf("the cookie appears in the session log %s", path)
			}
		}
	})

	t.Run("app exit ends the session and passes its status", func(t *testing.T) {
		if out, err := w.guestRun(`touch "$HOME/stop"`, ""); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if st := l.wait(t); st != 3 {
			t.Errorf("exit status %d, want the app's 3; stderr:\n%s", st, l.stderr.String())
		}
		w.checkGone(s)
	})
}

func TestRunRemoteEndings(t *testing.T) {
	for _, transport := range []string{"ssh", "tcp"} {
		t.Run(transport, func(t *testing.T) { testRunRemoteEndings(t, transport) })
	}
}

func testRunRemoteEndings(t *testing.T, transport string) {
	w := newWorld(t, true)
	w.remoteProfile("e2e", transport)

	t.Run("SIGTERM to the launcher", func(t *testing.T) {
		l := w.start("run", "e2e")
		s, _ := w.session(l)
		must(t, l.cmd.Process.Signal(syscall.SIGTERM))
		if st := l.wait(t); st != 128+int(syscall.SIGTERM) {
			t.Errorf("exit status %d, want %d", st, 128+int(syscall.SIGTERM))
		}
		w.checkGone(s)
	})

	t.Run("dropped SSH connection", func(t *testing.T) {
		l := w.start("run", "e2e")
		s, _ := w.session(l)
		must(t, w.g.KillSessions())
		if st := l.wait(t); st != 1 {
			t.Errorf("exit status %d, want 1", st)
		}
		if !strings.Contains(l.stderr.String(), "lost the SSH connection") {
			t.Errorf("stderr does not say the connection was lost:\n%s", l.stderr.String())
		}
		w.checkGone(s)
	})

	t.Run("SIGKILLed launcher is cleaned up by the next run", func(t *testing.T) {
		l := w.start("run", "e2e")
		s, _ := w.session(l)
		must(t, l.cmd.Process.Kill())
		l.wait(t)
		// Keep the dead session's guest display number busy, so that the
		// next session gets another one and the stale guest entry stays apart.
		if transport == "tcp" {
			holdDisplay(t, s.Display, s.XephyrPID)
		} else {
			w.holdGuestPort(6000 + atoiDisplay(t, s.GuestDisplay))
		}
		// The next launch runs the stale-session cleanup in the background.
		l2 := w.start("run", "e2e", "--verbose")
		s2, _ := w.session(l2)
		if s2.GuestDisplay == s.GuestDisplay {
			t.Fatalf("guest display %s was reused although it is held", s.GuestDisplay)
		}
		w.waitStaleGone(s.ID)
		if _, err := w.g.ReadHomeFile(".Xauthority"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the guest has a ~/.Xauthority (%v): nothing may write it", err)
		}
		// In the session log only: never on the terminal of another launch.
		if !w.logsContain("cleaned up after session " + s.ID) {
			t.Errorf("no session log reports cleaning session %s", s.ID)
		}
		if strings.Contains(l2.stderr.String(), s.ID) {
			t.Errorf("the stale cleanup printed into the second launch:\n%s", l2.stderr.String())
		}
		if argv, _ := procfs.Cmdline(s.XephyrPID); strings.Contains(strings.Join(argv, " "), s.ID) {
			t.Errorf("stale Xephyr pid %d still runs", s.XephyrPID)
		}
		if _, err := os.Stat(filepath.Join(w.runtime, "xvmview", s.ID)); err == nil {
			t.Errorf("stale session directory %s still exists", s.ID)
		}
		if out, err := w.guestRun(`touch "$HOME/stop"`, ""); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		l2.wait(t)
		_, _ = w.guestRun(`rm -f "$HOME/stop"`, "")
		w.checkGone(s2)
		w.checkGone(s)
	})
}

// TestRunWindowClosed: closing the Xephyr window on the host (here: the
// host server drops Xephyr's connection, as when a window manager kills it)
// ends the session with status 0 and the usual teardown.
func TestRunWindowClosed(t *testing.T) {
	w := newWorld(t, true)
	w.remoteProfile("e2e", "ssh")
	l := w.start("run", "e2e")
	s, _ := w.session(l)
	host := hostDisplay(t, w.x)
	win := xephyrWindow(t, host, "xvmview-e2e")
	must(t, xproto.KillClientChecked(host, uint32(win)).Check())
	if st := l.wait(t); st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
	if !strings.Contains(l.stderr.String(), "the Xephyr window was closed") {
		t.Errorf("stderr does not say the window was closed:\n%s", l.stderr.String())
	}
	w.checkGone(s)
}

// TestRunClosedStdout: `xvmview run web | head` — the reader of xvmview's
// stdout goes away while the guest app prints. The launcher must neither die
// of SIGPIPE (no teardown) nor stall the app: the session goes on, output
// dropped, until it is ended.
func TestRunClosedStdout(t *testing.T) {
	w := newWorld(t, true)
	w.profile("chatty", `host = "e2eguest"
command = ["sh", "-c", "while :; do echo chatter; sleep 0.01; done"]
`)
	r, wr, err := os.Pipe()
	must(t, err)
	l := w.startOut(wr, "run", "chatty")
	wr.Close()
	s, _ := w.session(l)
	line := make([]byte, len("[chatty] chatter\n"))
	if _, err := io.ReadFull(r, line); err != nil || string(line) != "[chatty] chatter\n" {
		t.Fatalf("read %q, %v; want the app's output", line, err)
	}
	r.Close()
	// The session goes on, its output dropped.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-l.done:
			t.Fatalf("the launcher ended when its stdout closed (%v); stderr:\n%s", l.err, l.stderr.String())
		default:
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(t, l.cmd.Process.Signal(syscall.SIGTERM))
	if st := l.wait(t); st != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want %d", st, 128+int(syscall.SIGTERM))
	}
	w.checkGone(s)
}

// TestRunSignals: SIGINT and SIGHUP end a session like SIGTERM, with 128+N.
func TestRunSignals(t *testing.T) {
	w := newWorld(t, false)
	w.profile("loc", `host = "local"
command = ["sh", "-c", "while :; do sleep 0.1; done"]
window_manager = ["twm"]
`)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			l := w.start("run", "loc")
			s, _ := w.session(l)
			must(t, l.cmd.Process.Signal(sig))
			if st := l.wait(t); st != 128+int(sig) {
				t.Errorf("exit status %d, want %d", st, 128+int(sig))
			}
			w.checkGone(s)
		})
	}
}

func TestRunRefusesBadHostKeys(t *testing.T) {
	w := newWorld(t, true)
	w.remoteProfile("e2e", "tcp")
	cases := []struct {
		name  string
		setup func(path string) error
		want  []string
	}{
		{"unknown host", func(path string) error { return os.WriteFile(path, nil, 0o600) }, []string{w.g.HostKeyFingerprint}},
		{"changed host key", w.g.WrongKnownHosts, []string{w.g.HostKeyFingerprint, "changed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kh := filepath.Join(w.home, ".ssh", "known_hosts_"+strings.ReplaceAll(tc.name, " ", "_"))
			must(t, tc.setup(kh))
			w.sshConfig(kh)
			l := w.start("run", "e2e")
			if st := l.wait(t); st != 1 {
				t.Errorf("exit status %d, want 1", st)
			}
			for _, s := range tc.want {
				if !strings.Contains(l.stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, l.stderr.String())
				}
			}
			if _, err := w.g.ReadHomeFile(".Xauthority"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the guest got an Xauthority file (err %v)", err)
			}
			w.checkGone(session.State{Display: -1, XephyrPID: -1})
		})
	}
}

// TestRunUnreachable: a guest whose port is closed gives an error naming the
// address and a hint, and leaves nothing behind.
func TestRunUnreachable(t *testing.T) {
	w := newWorld(t, false)
	w.profile("gone", `host = "127.0.0.1"
port = 1
command = ["xterm"]
`)
	l := w.start("run", "gone")
	if st := l.wait(t); st != 1 {
		t.Errorf("exit status %d, want 1", st)
	}
	for _, want := range []string{"xvmview: error: cannot reach guest at 127.0.0.1:1", "xvmview: hint: is the guest running"} {
		if !strings.Contains(l.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, l.stderr.String())
		}
	}
	w.checkGone(session.State{Display: -1, XephyrPID: -1})
}

// TestRunForwardingRefused: a guest whose sshd forbids forwarding gets a
// clear error naming the sshd_config line, and nothing is left behind.
func TestRunForwardingRefused(t *testing.T) {
	w := buildWorld(t, &testguest.Options{SSHDConfig: []string{"AllowTcpForwarding no"}}, testguest.XvfbOptions{})
	w.remoteProfile("e2e", "ssh")
	l := w.start("run", "e2e")
	if st := l.wait(t); st != 1 {
		t.Errorf("exit status %d, want 1", st)
	}
	for _, want := range []string{"refuses remote port forwarding", `"AllowTcpForwarding yes"`, "/etc/ssh/sshd_config", `xvmview: hint: or, on a host-only network you trust, set transport = "tcp"`} {
		if !strings.Contains(l.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, l.stderr.String())
		}
	}
	if _, err := w.g.ReadHomeFile(".Xauthority"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the guest got an Xauthority file (err %v)", err)
	}
	w.checkGone(session.State{Display: -1, XephyrPID: -1})
}

func TestRunLocal(t *testing.T) {
	w := newWorld(t, false)
	w.profile("loc", `description = "local end-to-end"
host = "local"
command = ["sh", "-c", "xdpyinfo >/dev/null && test -z \"$(XAUTHORITY=/nonexistent xdpyinfo 2>/dev/null)\" && exit 3"]
window_manager = ["twm"]
`)
	l := w.start("run", "loc", "--verbose")
	if st := l.wait(t); st != 3 {
		t.Fatalf("exit status %d, want 3 (the app checks it can reach its display with the cookie and not without); stderr:\n%s", st, l.stderr.String())
	}
	w.checkGone(session.State{Display: -1, XephyrPID: -1})

	t.Run("session log", func(t *testing.T) {
		dir := filepath.Join(w.home, ".local", "state", "xvmview")
		path, err := latestLog(dir, "loc")
		must(t, err)
		fi, err := os.Stat(path)
		must(t, err)
		di, err := os.Stat(dir)
		must(t, err)
		if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
			t.Errorf("log %v, dir %v; want 0600 in 0700", fi.Mode(), di.Mode())
		}
		b, err := os.ReadFile(path)
		must(t, err)
		for _, want := range []string{"session of profile loc started", "Xephyr ready on :", "window manager ready", "ended: the app exited (status 3)"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("log lacks %q:\n%s", want, b)
			}
		}
	})
}
