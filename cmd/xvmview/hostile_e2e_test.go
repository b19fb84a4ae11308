package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// cookieApp records the XAUTHORITY it got, proves it can connect with it,
// then waits for ~/stop and exits 3.
const cookieApp = `printf '%s' "$XAUTHORITY" > "$HOME/xa.new" && mv "$HOME/xa.new" "$HOME/xa"
xdpyinfo >/dev/null && touch "$HOME/connected"
while [ ! -e "$HOME/stop" ]; do sleep 0.1; done
exit 3`

var sessionAuthRE = regexp.MustCompile(`^/dev/shm/xvmview\.[A-Za-z0-9]{10}/Xauthority$`)

// guestEnv returns the value of name in the environment of the guest
// process whose argv[0] is prog.
func (w *world) guestEnv(t *testing.T, prog, name string) string {
	t.Helper()
	procs, err := w.g.Processes()
	must(t, err)
	for _, p := range procs {
		if len(p.Cmdline) == 0 || p.Cmdline[0] != prog {
			continue
		}
		env, err := procfs.Environ(p.PID)
		if err != nil {
			continue
		}
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				return v
			}
		}
	}
	t.Fatalf("no guest process %s with %s in its environment", prog, name)
	return ""
}

// TestRunGuestCookieOffDisk: the guest's cookie lives in a per-session file
// on a tmpfs (here /dev/shm: the test guest has no XDG_RUNTIME_DIR), 0600 in
// a 0700 directory of the guest user; the window manager and the app get
// XAUTHORITY pointing at it and connect; ~/.Xauthority is never written;
// and the file and directory go when the app exits, when the launcher is
// stopped and when it is SIGKILLed (the connection drops).
func TestRunGuestCookieOffDisk(t *testing.T) {
	w := newWorld(t, true)
	w.profile("cookie", fmt.Sprintf(`host = "e2eguest"
command = ["sh", "-c", %q]
window_manager = ["twm"]
screen = "640x480"
`, cookieApp))
	for _, end := range []string{"app exit", "SIGTERM", "SIGKILL"} {
		t.Run(end, func(t *testing.T) {
			l := w.start("run", "cookie")
			s, _ := w.session(l)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if _, err := w.g.ReadHomeFile("connected"); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the guest app did not connect to its display with its XAUTHORITY; stderr:\n%s", l.stderr.String())
				}
			}
			b, err := w.g.ReadHomeFile("xa")
			must(t, err)
			path := string(b)
			if !sessionAuthRE.MatchString(path) {
				t.Fatalf("the app's XAUTHORITY is %q, want /dev/shm/xvmview.XXXXXXXXXX/Xauthority", path)
			}
			if wm := w.guestEnv(t, "twm", "XAUTHORITY"); wm != path {
				t.Errorf("twm's XAUTHORITY is %q, want the app's %q", wm, path)
			}
			var st syscall.Statfs_t
			must(t, syscall.Statfs(path, &st))
			if st.Type != 0x01021994 { // TMPFS_MAGIC
				t.Errorf("%s is on filesystem type %#x, want tmpfs", path, st.Type)
			}
			dir := filepath.Dir(path)
			for _, f := range []struct {
				path string
				mode os.FileMode
			}{{dir, 0o700 | os.ModeDir}, {path, 0o600}} {
				fi, err := os.Lstat(f.path)
				must(t, err)
				if fi.Mode() != f.mode || int(fi.Sys().(*syscall.Stat_t).Uid) != w.g.UID {
					t.Errorf("%s: mode %v uid %d, want %v uid %d", f.path, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, f.mode, w.g.UID)
				}
			}
			if _, err := w.g.ReadHomeFile(".Xauthority"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the guest has a ~/.Xauthority during the session (%v)", err)
			}

			switch end {
			case "app exit":
				if out, err := w.guestRun(`touch "$HOME/stop"`, ""); err != nil {
					t.Fatalf("touch stop: %v: %s", err, out)
				}
				if st := l.wait(t); st != 3 {
					t.Errorf("exit status %d, want 3; stderr:\n%s", st, l.stderr.String())
				}
			case "SIGTERM":
				must(t, l.cmd.Process.Signal(syscall.SIGTERM))
				if st := l.wait(t); st != 128+int(syscall.SIGTERM) {
					t.Errorf("exit status %d, want %d", st, 128+int(syscall.SIGTERM))
				}
			case "SIGKILL":
				must(t, l.cmd.Process.Kill())
				l.wait(t)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s is still there 10 s after the session ended (%s)", dir, end)
				}
			}
			if end == "SIGKILL" {
				// A killed launcher cannot remove its own session directory;
				// the next launch does (TestRunRemoteEndings). Here: by hand.
				for deadline := time.Now().Add(10 * time.Second); procfs.Alive(s.XephyrPID); time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("Xephyr pid %d outlived its launcher", s.XephyrPID)
					}
				}
				must(t, os.RemoveAll(filepath.Join(w.runtime, "xvmview", s.ID)))
				if s.XephyrCgroup != "" {
					must(t, os.Remove(s.XephyrCgroup))
				}
			}
			w.checkGone(s)
			if _, err := w.g.ReadHomeFile(".Xauthority"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the guest has a ~/.Xauthority after the session (%v)", err)
			}
			_, _ = w.guestRun(`rm -f "$HOME/stop" "$HOME/xa" "$HOME/connected"`, "")
		})
	}
}

// TestRunCleansOldGuestEntry: a session recorded by a version that wrote the
// cookie into the guest's ~/.Xauthority (state with guest_entry) and whose
// launcher died still gets that entry removed by the next launch (in the
// background), and entries for other displays stay.
func TestRunCleansOldGuestEntry(t *testing.T) {
	w := newWorld(t, true)
	w.remoteProfile("e2e", "ssh")
	seed := xauth.WildEntry(17, xauthCookie(t)).Numeric() + xauth.WildEntry(18, xauthCookie(t)).Numeric()
	if out, err := w.guestRun(`xauth -q nmerge - && xauth nlist | wc -l | grep -qx 2`, seed); err != nil {
		t.Fatalf("seed the guest's ~/.Xauthority: %v: %s", err, out)
	}
	tg, err := guest.Resolve("e2eguest", guest.Overrides{}, guest.Config{SSHConfigFile: filepath.Join(w.home, ".ssh", "config"), Home: w.home})
	must(t, err)
	dead := exec.Command("true")
	must(t, dead.Run())
	old := session.State{ID: "0123456789abcdef", Profile: "e2e", LauncherPID: dead.Process.Pid, Started: time.Now().Add(-time.Hour),
		Display: 99, Guest: &tg, GuestDisplay: ":17", GuestEntry: true, Running: true}
	dir := filepath.Join(w.runtime, "xvmview", old.ID)
	must(t, os.MkdirAll(dir, 0o700))
	must(t, os.Chmod(filepath.Dir(dir), 0o700))
	b, err := json.Marshal(old)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600))

	l := w.start("run", "e2e")
	s, _ := w.session(l)
	// In the background, reported in the session log only.
	w.waitStaleGone(old.ID)
	if !w.logsContain("cleaned up after session " + old.ID) {
		t.Errorf("no session log reports cleaning the old session:\n%s", w.logs())
	}
	data, err := w.g.ReadHomeFile(".Xauthority")
	must(t, err)
	entries, err := xauth.Read(bytes.NewReader(data))
	must(t, err)
	var nums []string
	for _, e := range entries {
		nums = append(nums, e.Number)
	}
	if !slices.Equal(nums, []string{"18"}) {
		t.Errorf("the guest's ~/.Xauthority has entries for displays %q, want only 18's", nums)
	}
	if out, err := w.guestRun(`touch "$HOME/stop"`, ""); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st := l.wait(t); st != 3 {
		t.Errorf("exit status %d, want 3", st)
	}
	w.checkGone(s)
}

func xauthCookie(t *testing.T) xauth.Cookie {
	t.Helper()
	c, err := xauth.NewCookie()
	must(t, err)
	return c
}

// TestRunPixmapBomb: an X client on the nested display that creates huge
// pixmaps without end is refused (BadAlloc) by the memory limit, or ends
// only Xephyr; either way the launcher ends the session cleanly when asked.
func TestRunPixmapBomb(t *testing.T) {
	w := newWorld(t, true)
	w.profile("bomb", `host = "e2eguest"
command = ["sh", "-c", "while [ ! -e \"$HOME/stop\" ]; do sleep 0.1; done; exit 3"]
screen = "640x480"
resizeable = false
xephyr_memory = "128M"
`)
	l := w.start("run", "bomb")
	s, cookie := w.session(l)
	if soft, hard, err := procfs.Limit(s.XephyrPID, "Max data size"); err != nil || soft != "134217728" || hard != "134217728" {
		t.Errorf("Xephyr's data limit is %q/%q (err %v), want the 128M", soft, hard, err)
	}
	// And a memory cgroup leaf of the session's (this machine has the
	// cgroup v1 memory controller; a systemd user scope has its own test).
	if strings.Contains(session.ProbeMemory(nil), "cgroup") {
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", s.XephyrPID))
		must(t, err)
		if s.XephyrCgroup == "" || !strings.Contains(string(cg), "/"+filepath.Base(s.XephyrCgroup)+"\n") {
			t.Errorf("Xephyr is not in its session's memory cgroup %q: %s", s.XephyrCgroup, cg)
		} else {
			lim, _ := os.ReadFile(filepath.Join(s.XephyrCgroup, "memory.limit_in_bytes"))
			if lim2, err := os.ReadFile(filepath.Join(s.XephyrCgroup, "memory.max")); err == nil {
				lim = lim2
			}
			if strings.TrimSpace(string(lim)) != "134217728" {
				t.Errorf("the leaf's limit is %q, want 134217728", lim)
			}
		}
	}
	if v, err := procfs.StatusField(s.XephyrPID, "NoNewPrivs"); err != nil || v != "1" {
		t.Errorf("Xephyr runs without no_new_privs (NoNewPrivs %q, err %v)", v, err)
	}
	env, err := procfs.Environ(s.XephyrPID)
	must(t, err)
	for _, kv := range env {
		// The test's host display has no cookie: HOME stands in for
		// XAUTHORITY (libXau's ~/.Xauthority).
		if name, _, _ := strings.Cut(kv, "="); name != "DISPLAY" && name != "XAUTHORITY" && name != "HOME" {
			t.Errorf("Xephyr's environment has %s", name)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := xephyr.Dial(ctx, s.Display, cookie)
	must(t, err)
	root := xproto.Setup(conn).DefaultScreen(conn)
	refused := false
	for i := range 64 { // 4 GiB if nothing stops it
		id, err := xproto.NewPixmapId(conn)
		if err != nil {
			break // the server went away
		}
		err = xproto.CreatePixmapChecked(conn, root.RootDepth, id, xproto.Drawable(root.Root), 4096, 4096).Check()
		var alloc xproto.AllocError
		if errors.As(err, &alloc) {
			t.Logf("BadAlloc after %d pixmaps of 64 MiB", i)
			refused = true
			break
		}
		if err != nil {
			t.Logf("after %d pixmaps: %v", i, err)
			break
		}
	}
	conn.Close()
	if !refused {
		t.Errorf("the nested server never refused a pixmap")
	}
	must(t, l.cmd.Process.Signal(syscall.SIGTERM))
	if st := l.wait(t); st != 128+int(syscall.SIGTERM) && st != 0 {
		t.Errorf("exit status %d, want %d (or 0 if Xephyr died); stderr:\n%s", st, 128+int(syscall.SIGTERM), l.stderr.String())
	}
	w.checkGone(s)
	_, _ = w.guestRun(`rm -f "$HOME/stop"`, "")
}
