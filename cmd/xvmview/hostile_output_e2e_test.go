package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// The hostile-guest tests of issue 9 items 2 and 5: what the guest prints
// and what its xauth says reach the user's terminal and the session log only
// made visible, and a stale session on a guest whose xauth fails neither
// delays nor prints into another launch, is retried a bounded number of
// times, then reported by ps.

// hostileScript prints the escapes of issue 9 (a title change, a colour, a
// cursor-position query the terminal would answer on the user's shell), an
// 8-bit CSI, a C1 CSI, a bidi override, carriage returns that would overwrite
// a line, on stdout and on stderr, then exits 0.
const hostileScript = `esc='\033]2;TITLE\007\033[31mRED\033[6n'
printf "$esc"
printf "$esc" >&2
printf '\n\233[31m 8-bit \302\233[31m C1 \342\200\256txt.exe\r\nsafe\rFORGED\n'
printf 'xvmview: error: forged\033[2K\r\n' >&2
exit 0
`

// checkNoControls fails unless s is valid UTF-8 holding no control
// character but newline and tab, and no bidi or other format control.
func checkNoControls(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%s is not valid UTF-8:\n%q", what, s)
	}
	for i, r := range s {
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, r >= 0x200e && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			t.Errorf("%s holds control %U at byte %d:\n%q", what, r, i, s)
			return
		}
	}
}

// logs returns the text of every session log.
func (w *world) logs() string {
	dir := filepath.Join(w.home, ".local", "state", "xvmview")
	ents, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		must(w.t, err)
		b.Write(data)
	}
	return b.String()
}

func (w *world) logsContain(s string) bool { return strings.Contains(w.logs(), s) }

// waitStaleGone waits until the stale session id is cleaned up: neither its
// directory nor a cleaner's claim of it is left.
func (w *world) waitStaleGone(id string) {
	w.t.Helper()
	root := filepath.Join(w.runtime, "xvmview")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err1 := os.Stat(filepath.Join(root, id))
		_, err2 := os.Stat(filepath.Join(root, ".clean-"+id))
		if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("stale session %s is not cleaned up after 30 s", id)
		}
	}
}

// TestHostileOutputEscapes: a guest app and window manager that print
// terminal escapes on stdout and stderr. The launcher's stdout, stderr and
// session log hold them made visible, each line labelled with the profile,
// and no control byte but newline and tab. Over ssh, and for a local app.
func TestHostileOutputEscapes(t *testing.T) {
	w := newWorld(t, true)
	if out, err := w.guestRun(`cat > "$HOME/hostile.sh"`, hostileScript); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	host := filepath.Join(w.home, "hostile.sh")
	must(t, os.WriteFile(host, []byte(hostileScript), 0o600))
	wm := `printf '\033]2;WM\007\033[6n\n'; printf '\033]2;WMERR\007\233\n' >&2; exec twm`
	w.profile("hostile", fmt.Sprintf(`host = "e2eguest"
command = ["sh", %q]
window_manager = ["sh", "-c", %q]
`, w.g.Home+"/hostile.sh", wm))
	w.profile("hostile-local", fmt.Sprintf(`host = "local"
command = ["sh", %q]
window_manager = ["sh", "-c", %q]
`, host, wm))
	for _, name := range []string{"hostile", "hostile-local"} {
		t.Run(name, func(t *testing.T) {
			l := w.start("run", name)
			if st := l.wait(t); st != 0 {
				t.Fatalf("exit status %d, want the app's 0; stderr:\n%s", st, l.stderr.String())
			}
			out, errOut := l.stdout.String(), l.stderr.String()
			checkNoControls(t, "launcher stdout", out)
			checkNoControls(t, "launcher stderr", errOut)
			label := "[" + name + "] "
			for _, want := range []string{
				label + `^[]2;TITLE^G^[[31mRED^[[6n` + "\n",
				label + `\x9b[31m 8-bit \u009b[31m C1 \u202etxt.exe` + "\n",
				label + "safe^MFORGED\n",
				label + "^[]2;WM^G^[[6n\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range []string{label + `^[]2;TITLE^G^[[31mRED^[[6n` + "xvmview: error: forged^[[2K\n", label + `^[]2;WMERR^G\x9b` + "\n"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			for _, l := range strings.Split(errOut, "\n") {
				if strings.HasPrefix(l, "xvmview: error:") {
					t.Errorf("the guest forged an error line: %q", l)
				}
			}
			path, err := latestLog(filepath.Join(w.home, ".local", "state", "xvmview"), name)
			must(t, err)
			b, err := os.ReadFile(path)
			must(t, err)
			checkNoControls(t, "session log", string(b))
			if !strings.Contains(string(b), label+`^[]2;TITLE^G^[[31mRED^[[6n`) {
				t.Errorf("session log lacks the app's stderr made visible:\n%s", b)
			}
		})
	}
}

// hostileXauthGuest is a world whose guest runs the user's PATH from
// ~/.ssh/environment, which puts a hostile xauth first: it behaves like the
// real one but while ~/hostile-remove exists `xauth remove DISPLAY` fails
// (counting its calls in ~/remove-count and, while ~/hang exists, waiting
// for ~/release, at most 30 s, first), and while ~/hostile-nmerge exists
// `xauth nmerge` fails (while ~/hang-nmerge exists, after touching
// ~/nmerge-hanging and waiting the same way); both print escapes and a
// forged line on stderr.
func hostileXauthGuest(t *testing.T) *world {
	w := buildWorld(t, &testguest.Options{SSHDConfig: []string{"PermitUserEnvironment yes"}}, testguest.XvfbOptions{})
	const xauth = `#!/bin/sh
case " $* " in
*" remove "*)
	if [ -e "$HOME/hostile-remove" ] && [ "$#" -eq 3 ]; then
		echo x >> "$HOME/remove-count"
		i=0
		while [ -e "$HOME/hang" ] && [ ! -e "$HOME/release" ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
		printf 'xauth: \033]2;XAUTH\007\033[6n\nxvmview: ok forged\r\n' >&2
		exit 1
	fi;;
*" nmerge "*)
	if [ -e "$HOME/hostile-nmerge" ]; then
		cat >/dev/null
		i=0
		while [ -e "$HOME/hang-nmerge" ] && [ ! -e "$HOME/release" ] && [ "$i" -lt 300 ]; do touch "$HOME/nmerge-hanging"; sleep 0.1; i=$((i + 1)); done
		printf 'xauth: \033]2;XAUTH\007\033[6n\nxvmview: ok forged\r\n' >&2
		exit 1
	fi;;
esac
exec /usr/bin/xauth "$@"
`
	if out, err := w.guestRun(`mkdir -p "$HOME/bin" && cat > "$HOME/bin/xauth" && chmod 755 "$HOME/bin/xauth"`, xauth); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// ~/.ssh is root's (testguest made it): write as root, readable.
	env := "PATH=" + w.g.Home + "/bin:/usr/local/bin:/usr/bin:/bin\n"
	must(t, os.WriteFile(filepath.Join(w.g.Home, ".ssh", "environment"), []byte(env), 0o644))
	return w
}

// TestHostileOutputXauth: the guest's xauth fails writing the session's
// Xauthority file, with escapes and a forged line on stderr. The launch fails with one
// error line that quotes it made visible, and leaves nothing behind.
func TestHostileOutputXauth(t *testing.T) {
	w := hostileXauthGuest(t)
	w.remoteProfile("e2e", "ssh")
	if out, err := w.guestRun(`touch "$HOME/hostile-nmerge"`, ""); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	l := w.start("run", "e2e")
	if st := l.wait(t); st != 1 {
		t.Errorf("exit status %d, want 1", st)
	}
	errOut := l.stderr.String()
	checkNoControls(t, "launcher stderr", errOut)
	if !strings.Contains(errOut, `xvmview: error: write the session's Xauthority on `+w.g.Addr) ||
		!strings.Contains(errOut, `xauth: ^[]2;XAUTH^G^[[6n^Jxvmview: ok forged`) {
		t.Errorf("stderr lacks the error quoting the guest's xauth made visible:\n%s", errOut)
	}
	for _, line := range strings.Split(errOut, "\n") {
		if strings.HasPrefix(line, "xvmview: ok") {
			t.Errorf("the guest forged a line: %q", line)
		}
	}
	w.checkGone(session.State{Display: -1, XephyrPID: -1})
}

// TestHostileStaleCleanup: a stale session (recorded by a version that wrote
// the cookie into the guest's ~/.Xauthority) whose guest entry cannot be
// removed: the guest's xauth remove hangs, then fails printing escapes. Launches of another
// profile are not held up by it (the app runs while the cleanup waits on the
// guest) and print nothing of it; each tries it once in the background, at
// most session.MaxCleanupTries in all; then `xvmview ps` reports it, made
// visible, and `xvmview stop ID` cleans it up once the guest behaves.
func TestHostileStaleCleanup(t *testing.T) {
	w := hostileXauthGuest(t)
	root := filepath.Join(w.runtime, "xvmview")
	guestDo := func(script string) {
		t.Helper()
		if out, err := w.guestRun(script, ""); err != nil {
			t.Fatalf("%s: %v: %s", script, err, out)
		}
	}
	stop := filepath.Join(w.home, "stop-other")
	w.profile("other", fmt.Sprintf(`host = "local"
command = ["sh", "-c", "while [ ! -e %s ]; do sleep 0.05; done"]
`, stop))
	var s session.State // the victim's
	// record returns the stale session's state when it is on record (not
	// claimed by a cleaner right now).
	record := func() (session.State, bool) {
		t.Helper()
		var rec session.State
		b, err := os.ReadFile(filepath.Join(root, s.ID, "state.json"))
		if err != nil {
			return rec, false
		}
		must(t, json.Unmarshal(b, &rec))
		return rec, true
	}
	// other runs the other profile until the stale record has tries tries
	// and is back on record (not claimed), and returns its stderr.
	other := func(tries int) string {
		t.Helper()
		_ = os.Remove(stop)
		l := w.start("run", "other")
		w.session(l)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			rec, ok := record()
			if ok && rec.CleanupTries >= tries {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stale record not tried %d times after 30 s: %+v", tries, rec)
			}
		}
		must(t, os.WriteFile(stop, nil, 0o600))
		if st := l.wait(t); st != 0 {
			t.Fatalf("other: exit status %d; stderr:\n%s", st, l.stderr.String())
		}
		return l.stderr.String()
	}

	// A session recorded by a version that wrote the cookie into the
	// guest's ~/.Xauthority, whose launcher died: the one kind of stale
	// session whose cleanup logs in to the guest.
	seed := xauth.WildEntry(17, xauthCookie(t)).Numeric()
	guestDo(`printf '%s' '` + seed + `' | xauth -q nmerge -`)
	tg, err := guest.Resolve("e2eguest", guest.Overrides{}, guest.Config{SSHConfigFile: filepath.Join(w.home, ".ssh", "config"), Home: w.home})
	must(t, err)
	dead := exec.Command("true")
	must(t, dead.Run())
	s = session.State{ID: "0123456789abcdef", Profile: "victim", LauncherPID: dead.Process.Pid, Started: time.Now().Add(-time.Hour),
		Display: 99, Guest: &tg, GuestDisplay: ":17", GuestEntry: true, Running: true}
	must(t, os.MkdirAll(filepath.Join(root, s.ID), 0o700))
	must(t, os.Chmod(root, 0o700))
	b, err := json.Marshal(s)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(root, s.ID, "state.json"), b, 0o600))
	guestDo(`touch "$HOME/hostile-remove" "$HOME/hang"`)

	t.Run("runs alongside another launch, printing nothing into it", func(t *testing.T) {
		_ = os.Remove(stop)
		l := w.start("run", "other")
		w.session(l)
		// The cleanup waits on the guest's xauth (until ~/release) while the
		// other profile's app runs.
		claim := filepath.Join(root, ".clean-"+s.ID)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, err := os.Stat(claim)
			_, rerr := w.g.ReadHomeFile("remove-count")
			if err == nil && rerr == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the stale cleanup did not reach the guest's xauth while the other launch ran (claim: %v, xauth: %v)", err, rerr)
			}
		}
		must(t, os.WriteFile(stop, nil, 0o600))
		if st := l.wait(t); st != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", st, l.stderr.String())
		}
		guestDo(`touch "$HOME/release"`)
		errOut := l.stderr.String()
		checkNoControls(t, "stderr", errOut)
		if strings.Contains(errOut, s.ID) || strings.Contains(errOut, "stale") || strings.Contains(errOut, "XAUTH") {
			t.Errorf("the stale cleanup printed into the other launch:\n%s", errOut)
		}
		if got, ok := record(); !ok || got.CleanupTries != 1 || got.CleanupError == "" {
			t.Errorf("after one launch the record is %+v (on record: %v), want 1 try and its error", got, ok)
		}
		if !w.logsContain("stale session " + s.ID + " (profile victim), try 1 of 3") {
			t.Errorf("the session log does not report the try:\n%s", w.logs())
		}
	})

	t.Run("tried at most 3 times", func(t *testing.T) {
		guestDo(`rm "$HOME/hang" "$HOME/release"`)
		for tries := 2; tries <= session.MaxCleanupTries; tries++ {
			errOut := other(tries)
			checkNoControls(t, "stderr", errOut)
			if strings.Contains(errOut, s.ID) || strings.Contains(errOut, "XAUTH") {
				t.Errorf("the stale cleanup printed into the other launch:\n%s", errOut)
			}
		}
		other(session.MaxCleanupTries) // one more launch: no try
		if got, ok := record(); !ok || got.CleanupTries != session.MaxCleanupTries {
			t.Errorf("record tried %d times (on record: %v), want %d", got.CleanupTries, ok, session.MaxCleanupTries)
		}
		out, err := w.g.ReadHomeFile("remove-count")
		must(t, err)
		if n := strings.Count(string(out), "x"); n != session.MaxCleanupTries {
			t.Errorf("the guest's xauth remove ran %d times, want %d", n, session.MaxCleanupTries)
		}
		checkNoControls(t, "session logs", w.logs())
	})

	t.Run("reported by ps", func(t *testing.T) {
		l := w.start("ps")
		if st := l.wait(t); st != 0 {
			t.Fatalf("ps: exit status %d; stderr:\n%s", st, l.stderr.String())
		}
		errOut := l.stderr.String()
		checkNoControls(t, "ps stderr", errOut)
		for _, want := range []string{
			"xvmview: session " + s.ID + " (profile victim, guest " + w.g.User + "@",
			"display " + s.GuestDisplay + ") left what its cleanup could not undo in 3 tries:",
			"xauth: ^[]2;XAUTH^G^[[6n^Jxvmview: ok forged)",
			"xvmview: hint: fix the guest",
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("ps stderr lacks %q:\n%s", want, errOut)
			}
		}
		if strings.Contains(errOut, "stale session(s) not listed") {
			t.Errorf("ps counts the reported session as waiting for the next run:\n%s", errOut)
		}
	})

	t.Run("stop cleans it up once the guest behaves", func(t *testing.T) {
		l := w.start("stop", s.ID)
		if st := l.wait(t); st != 1 {
			t.Errorf("stop with the guest still failing: exit status %d, want 1", st)
		}
		checkNoControls(t, "stop stderr", l.stderr.String())
		if !strings.Contains(l.stderr.String(), "xvmview: error: clean up after session "+s.ID) {
			t.Errorf("stop does not say the cleanup failed:\n%s", l.stderr.String())
		}
		guestDo(`rm "$HOME/hostile-remove"`)
		l = w.start("stop", s.ID)
		if st := l.wait(t); st != 0 {
			t.Errorf("stop: exit status %d; stderr:\n%s", st, l.stderr.String())
		}
		w.checkGone(s)
	})
}
