package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
)

// The hostile-guest suite of issue 9 (item 9; docs/SECURITY.md lists it):
// one row per hostile guest, each run against the launcher as users get it
// (built without the race detector), on a real test guest with a real sshd
// or a lying in-process one, with real Xephyr under a private Xvfb. Every
// row asserts the same five things:
//
//   - nothing but newline and tab among the control characters on the
//     launcher's stdout and stderr (the user's terminal) and in the session
//     logs;
//   - the launcher's peak RSS under hostileRSSBound;
//   - SIGINT ends the session within signalBound (the promise is 2 s);
//   - nothing left on the host (no Xephyr, no session directory, no X
//     socket) or on the guest (no process of the guest user, no session
//     Xauthority directory, ~/.Xauthority as it was);
//   - the next launch of another profile runs, exits 0 and prints nothing
//     of the hostile one.
//
// The rows' specifics (what each hostile output looks like made visible, how
// a stale record is retried and reported, SIGTERM and stop during a grab,
// how many flooding connections the launcher closes) are in
// TestHostileOutputEscapes, TestHostileOutputXauth, TestHostileStaleCleanup,
// TestRunPixmapBomb, TestRunSignalsDuringGrab and TestRunHostileFlood.

const (
	hostileConns    = 250 // the connection flood's X connections
	hostileRSSBound = 64 << 20
)

// hostileRow is one hostile guest. Its setup writes the profile "hostile".
type hostileRow struct {
	name  string
	world func(t *testing.T) *world // nil: newWorld(t, true)
	setup func(t *testing.T, w *world, xhostile string)
	// self, when set, is a first launch that ends by itself with status
	// selfStatus, its stderr holding selfErr.
	self       bool
	selfStatus int
	selfErr    []string
	// arm prepares the guest for the launch that gets SIGINT; may be nil.
	arm func(t *testing.T, w *world)
	// ready waits until the hostile behaviour is under way in that launch.
	ready func(t *testing.T, w *world, l *launcher)
	// keep lists session IDs whose directories may stay (a stale record
	// on the hostile guest, still to be retried).
	keep []string
}

// hostileMeasure is what a row measured, for the summary.
type hostileMeasure struct {
	row  string
	peak int64
	took time.Duration
}

func TestHostileGuest(t *testing.T) {
	requireTools(t, "Xephyr", "Xvfb", "xauth", "twm", "xlogo")
	bin, xhostile := hostileBuild(t)
	rows := []hostileRow{
		{
			name: "escape floods",
			setup: func(t *testing.T, w *world, _ string) {
				w.guestFile(t, "flood.sh", escapeFlood+`gen; gen >&2; touch "$HOME/flooded"; while :; do sleep 0.1; done`)
				w.profile("hostile", fmt.Sprintf(`host = "e2eguest"
command = ["sh", %q]
window_manager = ["sh", "-c", %q]
screen = "640x480"
`, w.g.Home+"/flood.sh", escapeFlood+`gen; gen >&2; exec twm`))
			},
			ready: waitGuestFiles("flooded"),
		},
		{
			name:       "failing keeper",
			world:      hostileXauthGuest,
			setup:      hostileXauthProfile,
			self:       true,
			selfStatus: 1,
			selfErr:    []string{`xauth: ^[]2;XAUTH^G^[[6n^Jxvmview: ok forged`},
			// Then the keeper's xauth hangs: SIGINT must not wait for it.
			arm: func(t *testing.T, w *world) {
				w.guestDo(t, `touch "$HOME/hang-nmerge"`)
			},
			ready: waitGuestFiles("nmerge-hanging"),
		},
		{
			name:  "stale remove fails",
			world: hostileXauthGuest,
			setup: func(t *testing.T, w *world, x string) {
				hostileXauthProfile(t, w, x)
				w.guestDo(t, `rm "$HOME/hostile-nmerge"`)
				seedStaleRecord(t, w, "0123456789abcdef")
				w.guestDo(t, `touch "$HOME/hostile-remove"`)
			},
			// The launch's background cleanup reached the guest's xauth.
			ready: waitGuestFiles("app-running", "remove-count"),
			keep:  []string{"0123456789abcdef"},
		},
		{
			name: "exit status 256",
			setup: func(t *testing.T, w *world, _ string) {
				// The app's status 7 is reported as 256, which would be
				// exit status 0 if taken mod 256.
				s := startHostileSSHD(t, w.g, func(st int) uint32 {
					if st == 7 {
						return 256
					}
					return uint32(st)
				})
				cfg := filepath.Join(w.home, ".ssh", "config")
				old, err := os.ReadFile(cfg)
				must(t, err)
				must(t, os.WriteFile(cfg, append(old, s.stanza(t, "hostilesshd", filepath.Join(w.home, ".ssh", "known_hosts_hostile"))...), 0o600))
				w.profile("hostile", `host = "hostilesshd"
command = ["sh", "-c", "if [ -e \"$HOME/exit7\" ]; then exit 7; fi; touch \"$HOME/app-running\"; while :; do sleep 0.1; done"]
screen = "640x480"
`)
				w.guestDo(t, `touch "$HOME/exit7"`)
			},
			self:       true,
			selfStatus: 1,
			selfErr:    []string{"guest reported exit status 256, which no program can have (taken as 1)"},
			arm:        func(t *testing.T, w *world) { w.guestDo(t, `rm "$HOME/exit7"`) },
			ready:      waitGuestFiles("app-running"),
		},
		{
			name: "pixmap bomb",
			setup: func(t *testing.T, w *world, x string) {
				w.profile("hostile", fmt.Sprintf(`host = "e2eguest"
command = [%q, "bomb"]
screen = "640x480"
resizeable = false
xephyr_memory = "128M"
`, x))
			},
			ready: func(t *testing.T, w *world, l *launcher) {
				waitGuestFiles("bombed")(t, w, l)
				b, err := w.g.ReadHomeFile("bombed")
				must(t, err)
				if !strings.HasPrefix(string(b), "refused after ") {
					t.Errorf("the nested server never refused a pixmap: %s", b)
				}
			},
		},
		{
			name: "grabbing window manager",
			setup: func(t *testing.T, w *world, x string) {
				w.profile("hostile", fmt.Sprintf(`host = "e2eguest"
command = ["xlogo", "-geometry", "+10+10"]
window_manager = [%q, "grab"]
screen = "640x480"
`, x))
			},
			ready: waitGuestFiles("grabbed"),
		},
		{
			name: "connection flood behind a grab",
			setup: func(t *testing.T, w *world, x string) {
				w.profile("hostile", fmt.Sprintf(`host = "e2eguest"
command = [%q, "flood", "%d"]
screen = "640x480"
max_x_connections = %d
`, x, hostileConns, hostileConns))
			},
			ready: func(t *testing.T, w *world, l *launcher) {
				waitGuestFiles("flood")(t, w, l)
				b, err := w.g.ReadHomeFile("flood")
				must(t, err)
				if want := fmt.Sprintf("streams %d\n", hostileConns-1); string(b) != want {
					t.Errorf("the guest's flood: %q, want %q", b, want)
				}
				// Until the launcher has closed the streams the grabbed
				// server does not read: then it holds all it will.
				for deadline := time.Now().Add(60 * time.Second); !strings.Contains(l.stderr.String(), "did not read"); time.Sleep(100 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("no notice of closed connections 60 s into the flood; stderr:\n%s", l.stderr.String())
					}
				}
			},
		},
	}
	var mu sync.Mutex
	var measured []hostileMeasure
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			m := runHostileRow(t, row, bin, xhostile)
			mu.Lock()
			measured = append(measured, m)
			mu.Unlock()
		})
	}
	var b strings.Builder
	for _, m := range measured {
		fmt.Fprintf(&b, "\n  %-40s peak RSS %5.1f MiB, SIGINT to exit %v", m.row, float64(m.peak)/(1<<20), m.took.Round(time.Millisecond))
	}
	t.Logf("hostile guests, as measured:%s", b.String())
}

// escapeFlood defines gen, which prints 64 times the escapes of issue 9
// (title, colour, cursor query, 8-bit and C1 CSI, CR, BS, NUL, DEL) and
// 16 KiB of random bytes: about 1 MiB of everything.
const escapeFlood = `gen() {
	i=0
	while [ $i -lt 64 ]; do
		printf '\033]2;HOSTILE\007\033[31mRED\033[6n\233[1m\302\233[1m\r\t\b\000\001\177\n'
		head -c 16384 /dev/urandom
		i=$((i + 1))
	done
}
`

// hostileXauthProfile writes the profile "hostile" for a guest of
// hostileXauthGuest, and makes its keeper's xauth fail.
func hostileXauthProfile(t *testing.T, w *world, _ string) {
	w.profile("hostile", `host = "e2eguest"
command = ["sh", "-c", "touch \"$HOME/app-running\"; while :; do sleep 0.1; done"]
screen = "640x480"
`)
	w.guestDo(t, `touch "$HOME/hostile-nmerge"`)
}

// seedStaleRecord records a session id of a version that wrote the cookie
// into the guest's ~/.Xauthority (display :17, whose entry it adds), whose
// launcher died: its cleanup logs in to the guest.
func seedStaleRecord(t *testing.T, w *world, id string) {
	seed := xauthWild17(t)
	w.guestDo(t, `printf '%s' '`+seed+`' | xauth -q nmerge -`)
	tg, err := guest.Resolve("e2eguest", guest.Overrides{}, guest.Config{SSHConfigFile: filepath.Join(w.home, ".ssh", "config"), Home: w.home})
	must(t, err)
	dead := exec.Command("true")
	must(t, dead.Run())
	s := session.State{ID: id, Profile: "victim", LauncherPID: dead.Process.Pid, Started: time.Now().Add(-time.Hour),
		Display: 99, Guest: &tg, GuestDisplay: ":17", GuestEntry: true, Running: true}
	root := filepath.Join(w.runtime, "xvmview")
	must(t, os.MkdirAll(filepath.Join(root, id), 0o700))
	must(t, os.Chmod(root, 0o700))
	b, err := json.Marshal(s)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(root, id, "state.json"), b, 0o600))
}

func xauthWild17(t *testing.T) string {
	c := xauthCookie(t)
	return fmt.Sprintf("ffff 0000 0002 3137 0012 %x 0010 %s\n", "MIT-MAGIC-COOKIE-1", c.Hex())
}

// guestFile writes the guest user's ~/rel.
func (w *world) guestFile(t *testing.T, rel, content string) {
	t.Helper()
	if out, err := w.guestRun(`cat > "$HOME/`+rel+`"`, content); err != nil {
		t.Fatalf("write ~/%s on the guest: %v: %s", rel, err, out)
	}
}

// guestDo runs a shell snippet on the guest, failing the test if it fails.
func (w *world) guestDo(t *testing.T, script string) {
	t.Helper()
	if out, err := w.guestRun(script, ""); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
}

// waitGuestFiles waits (30 s at most) until each of the guest user's files
// exists.
func waitGuestFiles(names ...string) func(t *testing.T, w *world, l *launcher) {
	return func(t *testing.T, w *world, l *launcher) {
		t.Helper()
		for _, name := range names {
			w.waitGuestFile(l, name, 30*time.Second, func(string) bool { return true })
		}
	}
}

// hostileBuild builds xvmview as users get it and the hostile X client
// (testdata/xhostile) into a directory the guest user can read.
func hostileBuild(t *testing.T) (bin, xhostile string) {
	t.Helper()
	gobin := testguest.NeedProgram(t, "go", "golang")
	dir := t.TempDir()
	testguest.Reachable(t, dir)
	bin, xhostile = filepath.Join(dir, "xvmview"), filepath.Join(dir, "xhostile")
	for _, b := range [][2]string{{bin, "."}, {xhostile, "./testdata/xhostile"}} {
		if out, err := exec.Command(gobin, "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return bin, xhostile
}

// runHostileRow runs one row (see TestHostileGuest) and returns what it
// measured.
func runHostileRow(t *testing.T, row hostileRow, bin, xhostile string) hostileMeasure {
	m := hostileMeasure{row: row.name}
	var w *world
	if row.world != nil {
		w = row.world(t)
	} else {
		w = newWorld(t, true)
	}
	w.bin = bin
	other := filepath.Join(w.home, "other-ran")
	w.profile("other", fmt.Sprintf(`host = "local"
command = ["sh", "-c", "echo other-ok; touch %s"]
`, other))
	row.setup(t, w, xhostile)
	xauthority, xaErr := w.g.ReadHomeFile(".Xauthority")

	if row.self {
		l := w.start("run", "hostile")
		if st := l.wait(t); st != row.selfStatus {
			t.Errorf("first launch: exit status %d, want %d; stderr:\n%s", st, row.selfStatus, l.stderr.String())
		}
		checkNoControls(t, "first launch's stdout", l.stdout.String())
		checkNoControls(t, "first launch's stderr", l.stderr.String())
		wantAll(t, "first launch's stderr", l.stderr.String(), row.selfErr...)
	}
	if row.arm != nil {
		row.arm(t, w)
	}

	l := w.start("run", "hostile")
	row.ready(t, w, l)
	s := w.latestState(l)
	peak, err := procfs.PeakRSS(l.cmd.Process.Pid)
	must(t, err)
	m.peak = peak
	start := time.Now()
	must(t, l.cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-l.done:
	case <-time.After(20 * time.Second):
		_ = l.cmd.Process.Signal(syscall.SIGQUIT) // Go prints its goroutines
		select {
		case <-l.done:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("xvmview did not exit within 20 s of SIGINT; stderr (with goroutines):\n%s", l.stderr.String())
	}
	m.took = time.Since(start)
	t.Logf("peak RSS %.1f MiB, SIGINT to exit %v", float64(peak)/(1<<20), m.took.Round(time.Millisecond))
	if st := l.wait(t); st != 130 {
		t.Errorf("exit status %d after SIGINT, want 130; stderr:\n%s", st, l.stderr.String())
	}
	if peak > hostileRSSBound {
		t.Errorf("launcher peak RSS %.1f MiB, want under %d MiB", float64(peak)/(1<<20), hostileRSSBound>>20)
	}
	if m.took > signalBound {
		t.Errorf("xvmview took %v to exit after SIGINT, want under %v; stderr:\n%s", m.took, signalBound, l.stderr.String())
	}
	checkNoControls(t, "launcher stdout", l.stdout.String())
	checkNoControls(t, "launcher stderr", l.stderr.String())
	checkNoControls(t, "session logs", w.logs())
	w.checkHostileGone(s, row.keep, xauthority, xaErr)

	// The next launch of another profile.
	l = w.start("run", "other")
	if st := l.wait(t); st != 0 {
		t.Errorf("the other profile: exit status %d, want 0; stderr:\n%s", st, l.stderr.String())
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the other profile's app did not run: %v", err)
	}
	out := l.stdout.String() + l.stderr.String()
	checkNoControls(t, "the other launch's output", out)
	if !strings.Contains(l.stdout.String(), "[other] other-ok\n") {
		t.Errorf("the other launch's stdout lacks its app's line:\n%s", l.stdout.String())
	}
	for _, mark := range []string{"hostile", "HOSTILE", "XAUTH", "forged", "victim", "0123456789abcdef", "256"} {
		if strings.Contains(out, mark) {
			t.Errorf("the other launch printed %q of the hostile one:\n%s", mark, out)
		}
	}
	w.checkHostileGone(session.State{Display: -1, XephyrPID: -1}, row.keep, xauthority, xaErr)
	return m
}

// latestState returns the launcher's session state as last recorded.
func (w *world) latestState(l *launcher) session.State {
	w.t.Helper()
	return w.waitState(l, 30*time.Second, "session state", func(session.State) bool { return true })
}

// checkHostileGone asserts that nothing of session s is left: on the host
// no Xephyr, no session directory (but those of keep), no X socket file
// that nothing listens on (another server may have taken the display
// number since); on the guest no process of the guest user, no session
// Xauthority directory, and ~/.Xauthority as it was (xauthority, or
// missing when xaErr says so).
func (w *world) checkHostileGone(s session.State, keep []string, xauthority []byte, xaErr error) {
	t := w.t
	t.Helper()
	w.checkXephyrGone(s)
	if s.Display >= 0 {
		path := fmt.Sprintf("/tmp/.X11-unix/X%d", s.Display)
		if _, err := os.Lstat(path); err == nil {
			if listening, err := procfs.UnixListening(path); err != nil || !listening {
				t.Errorf("the session's X socket %s is left, and nothing listens on it (%v)", path, err)
			}
		}
	}
	w.checkRuntimeEmpty(keep)
	w.waitGuestClean()
	now, err := w.g.ReadHomeFile(".Xauthority")
	switch {
	case errors.Is(xaErr, fs.ErrNotExist) && !errors.Is(err, fs.ErrNotExist):
		t.Errorf("the guest has a ~/.Xauthority now (%v)", err)
	case xaErr == nil && (err != nil || !bytes.Equal(now, xauthority)):
		t.Errorf("the guest's ~/.Xauthority changed (%v)", err)
	}
}
