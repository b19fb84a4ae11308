package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
)

// In-process tests of check, trust, ps and stop; the end-to-end ones against
// a real guest are in everyday_e2e_test.go.

// everydayHome is cliHome with the runtime directory created, so that the
// sessions live under HOME/run/xvmview.
func everydayHome(t *testing.T) (home, root string) {
	t.Helper()
	home = cliHome(t)
	if err := os.Mkdir(filepath.Join(home, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home, filepath.Join(home, "run", "xvmview")
}

type cliCase struct {
	name     string
	args     []string
	env      map[string]string
	wantCode int
	wantOut  []string
	wantErr  []string
	notOut   []string
}

func (tc cliCase) run(t *testing.T) {
	t.Helper()
	for k, v := range tc.env {
		t.Setenv(k, v)
	}
	code, out, errOut := runCLI(t, tc.args...)
	if code != tc.wantCode {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out, errOut)
	}
	for _, w := range tc.wantOut {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
	for _, w := range tc.notOut {
		if strings.Contains(out, w) {
			t.Errorf("stdout has %q:\n%s", w, out)
		}
	}
	for _, w := range tc.wantErr {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

func TestCheckCLI(t *testing.T) {
	home, _ := everydayHome(t)
	writeProfile(t, home, "loc", "host = \"local\"\ncommand = [\"sh\"]\nwindow_manager = [\"nosuchwm-xvmview\"]\n")
	writeProfile(t, home, "broken", "host = \"local\"\ncomand = [\"sh\"]\n")
	writeProfile(t, home, "gone", "host = \"127.0.0.1\"\nport = 1\ncommand = [\"xterm\"]\nwindow_manager = [\"twm\"]\n")
	emptyPath := t.TempDir()

	tests := []cliCase{
		{name: "no profile", args: []string{"check"}, wantCode: 2, wantErr: []string{"check needs a profile name"}},
		{name: "two profiles", args: []string{"check", "a", "b"}, wantCode: 2, wantErr: []string{`unexpected argument "b"`}},
		{name: "nothing installed, no display", args: []string{"check", "loc"},
			env:      map[string]string{"PATH": emptyPath, "DISPLAY": ""},
			wantCode: 1,
			wantOut: []string{
				"FAIL Xephyr: not found in PATH\n     hint: install it: sudo apt-get install --no-install-recommends xserver-xephyr\n",
				"FAIL host display: no host display: DISPLAY is not set\n     hint: ",
				"ok   profile: loc (",
				"FAIL command: sh not found in PATH\n     hint: install sh",
				"FAIL window manager: nosuchwm-xvmview not found in PATH",
			},
			wantErr: []string{"xvmview: error: 4 of 5 checks failed"}},
		{name: "broken profile skips the rest", args: []string{"check", "broken"}, env: map[string]string{"DISPLAY": ""}, wantCode: 1,
			wantOut: []string{"FAIL profile: ", "broken.toml:2", "skip guest and commands: the profile did not load"}},
		{name: "unknown profile", args: []string{"check", "nosuch"}, env: map[string]string{"DISPLAY": ""}, wantCode: 1,
			wantOut: []string{"FAIL profile: ", "nosuch"}},
		{name: "unreachable guest", args: []string{"check", "gone"}, env: map[string]string{"DISPLAY": ""}, wantCode: 1,
			wantOut: []string{
				"ok   profile: gone (",
				"FAIL guest reachable: cannot reach guest at 127.0.0.1:1",
				"     hint: is the guest running",
				"skip host key: the guest did not answer",
				"skip login: the guest did not answer",
				"skip xauth on guest: ",
				"skip command on guest: ",
				"skip window manager on guest: ",
			},
			notOut: []string{"ok   host key", "FAIL host key", "FAIL login"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}

	t.Run("all green with Xephyr and a display", func(t *testing.T) {
		requireTools(t, "Xephyr", "Xvfb")
		x := testguest.StartXvfb(t, testguest.XvfbOptions{})
		for _, kv := range x.Env() {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		writeProfile(t, home, "loc2", "host = \"local\"\ncommand = [\"sh\", \"-c\", \"true\"]\nwindow_manager = [\"sh\"]\n")
		cliCase{args: []string{"check", "loc2"}, wantOut: []string{
			"ok   Xephyr: ", "ok   host display: DISPLAY=" + os.Getenv("DISPLAY") + ", ", "ok   command: /", "ok   window manager: /", "all 5 checks passed",
		}, notOut: []string{"FAIL", "skip"}}.run(t)
	})
}

func TestCheckMarks(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name string
		w    any
		tty  bool
	}{
		{"buffer", &bytes.Buffer{}, false},
		{"regular file", f, false},
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		tests = append(tests, struct {
			name string
			w    any
			tty  bool
		}{"terminal", tty, true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			k := newChecker(&b)
			if w, ok := tt.w.(*os.File); ok {
				k.marks = checkMarks[isTerminal(w)]
			}
			k.pass("a", "fine")
			k.fail("b", "broken", "fix it")
			k.skip("c", "needs b")
			want := "ok   a: fine\nFAIL b: broken\n     hint: fix it\nskip c: needs b\n"
			if tt.tty {
				want = "✓    a: fine\n✗    b: broken\n     hint: fix it\n-    c: needs b\n"
			}
			if b.String() != want {
				t.Errorf("output:\n%s\nwant:\n%s", b.String(), want)
			}
			if err := k.result(); err == nil || err.Error() != "1 of 3 checks failed" {
				t.Errorf("result = %v, want 1 of 3 checks failed", err)
			}
		})
	}
}

func TestTrustCLI(t *testing.T) {
	home, _ := everydayHome(t)
	writeProfile(t, home, "loc", "host = \"local\"\ncommand = [\"sh\"]\n")
	writeProfile(t, home, "gone", "host = \"127.0.0.1\"\nport = 1\ncommand = [\"xterm\"]\n")
	tests := []cliCase{
		{name: "no profile", args: []string{"trust"}, wantCode: 2, wantErr: []string{"trust needs a profile name"}},
		{name: "local profile", args: []string{"trust", "loc"}, wantCode: 1, wantErr: []string{"profile loc runs on this machine"}},
		{name: "unreachable", args: []string{"trust", "gone"}, wantCode: 1, wantErr: []string{"cannot reach guest at 127.0.0.1:1", "xvmview: hint: is the guest running"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh")); err == nil {
		t.Error("trust created ~/.ssh although it added nothing")
	}
}

// startTicks reads a process's start time (field 22 of /proc/PID/stat), as
// the launcher records it.
func startTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	n, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writeState records s under root as a launcher would.
func writeState(t *testing.T, root string, s session.State) string {
	t.Helper()
	dir := filepath.Join(root, s.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPsCLI(t *testing.T) {
	_, root := everydayHome(t)
	cliCase{name: "empty", args: []string{"ps"}, wantErr: []string{"xvmview: no sessions running"}, notOut: []string{"ID"}}.run(t)

	me := os.Getpid()
	ticks := startTicks(t, me)
	writeState(t, root, session.State{ID: "aaaa00000001", Profile: "web", LauncherPID: me, LauncherTime: ticks,
		Started: time.Now().Add(-90 * time.Second), Display: 7,
		Guest: &guest.Target{HostName: "10.0.0.2", Port: 2222, User: "alice"}})
	writeState(t, root, session.State{ID: "aaaa00000002", Profile: "demo", LauncherPID: me, LauncherTime: ticks, Started: time.Now(), Display: -1})
	writeState(t, root, session.State{ID: "dead00000003", Profile: "old", LauncherPID: me, LauncherTime: ticks + 1, Display: 3})

	code, out, errOut := runCLI(t, "ps")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"ID", "PROFILE", "DISPLAY", "GUEST", "PID", "UPTIME"},
		{"aaaa00000001", "web", ":7", "alice@10.0.0.2:2222", strconv.Itoa(me), "1m30s"},
		{"aaaa00000002", "demo", "-", "local", strconv.Itoa(me), "0s"},
	}
	if len(lines) != len(want) {
		t.Fatalf("ps printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		got := strings.Fields(lines[i])
		if i == 1 && len(got) == 6 && strings.HasPrefix(got[5], "1m3") {
			got[5] = "1m30s" // the test may take a second
		}
		if strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], w)
		}
	}
	if !strings.Contains(errOut, "1 stale session(s) not listed") {
		t.Errorf("stderr does not mention the stale session:\n%s", errOut)
	}
}

func TestEverydayCompletion(t *testing.T) {
	_, root := everydayHome(t)
	me := os.Getpid()
	writeState(t, root, session.State{ID: "aaaa00000001", Profile: "web", LauncherPID: me, LauncherTime: startTicks(t, me), Display: 7})
	tests := []cliCase{
		{name: "stop offers running sessions", args: []string{"__complete", "stop", ""},
			wantOut: []string{"web\tevery running session", "aaaa00000001\tprofile web, display :7"}, notOut: []string{"demo"}},
		{name: "stop filters by prefix", args: []string{"__complete", "stop", "aa"}, wantOut: []string{"aaaa00000001"}, notOut: []string{"web\t"}},
		{name: "check offers profiles", args: []string{"__complete", "check", ""}, wantOut: []string{"demo"}},
		{name: "trust offers profiles", args: []string{"__complete", "trust", ""}, wantOut: []string{"demo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestUptime(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{42 * time.Second, "42s"},
		{5*time.Minute + 7*time.Second, "5m07s"},
		{3*time.Hour + 5*time.Minute + 59*time.Second, "3h05m"},
		{52 * time.Hour, "2d04h"},
	}
	for _, tt := range tests {
		if got := uptime(tt.d); got != tt.want {
			t.Errorf("uptime(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// fakeLauncher starts a shell that plays a launcher for profile: it records
// its state under root and, on SIGTERM, removes its session directory and
// exits 143.
func fakeLauncher(t *testing.T, root, id, profile string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `trap 'rm -rf "$1"; exit 143' TERM; : > "$1/ready"; while :; do sleep 0.05; done`, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fake launcher did not start")
		}
	}
	writeState(t, root, session.State{ID: id, Profile: profile, LauncherPID: cmd.Process.Pid,
		LauncherTime: startTicks(t, cmd.Process.Pid), Started: time.Now(), Display: 5})
	return cmd, done
}

func TestStopCLI(t *testing.T) {
	_, root := everydayHome(t)
	me := os.Getpid()
	writeState(t, root, session.State{ID: "dead00000003", Profile: "old", LauncherPID: me, LauncherTime: startTicks(t, me) + 1, Display: 3})

	tests := []cliCase{
		{name: "no argument", args: []string{"stop"}, wantCode: 2, wantErr: []string{"stop needs a profile name or a session ID"}},
		{name: "unknown", args: []string{"stop", "nosuch"}, wantCode: 1,
			wantErr: []string{`no running session with ID or profile "nosuch"`, "xvmview: hint: run 'xvmview ps'"}},
		{name: "stale", args: []string{"stop", "old"}, wantCode: 1,
			wantErr: []string{"session dead00000003 is not running", "xvmview: hint: what it left behind is cleaned up by the next 'xvmview run'"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}

	t.Run("profile name stops all its sessions, ID only that one", func(t *testing.T) {
		a, aDone := fakeLauncher(t, root, "bbbb00000001", "web")
		b, bDone := fakeLauncher(t, root, "bbbb00000002", "web")
		c, cDone := fakeLauncher(t, root, "bbbb00000003", "mail")
		cliCase{args: []string{"stop", "web"}, wantErr: []string{"session bbbb00000001 ended", "session bbbb00000002 ended"}}.run(t)
		for _, l := range []struct {
			cmd  *exec.Cmd
			done chan struct{}
		}{{a, aDone}, {b, bDone}} {
			<-l.done
			if st := l.cmd.ProcessState.ExitCode(); st != 143 {
				t.Errorf("launcher %d exit status %d, want 143", l.cmd.Process.Pid, st)
			}
		}
		select {
		case <-cDone:
			t.Fatal("stop web also stopped the session of profile mail")
		default:
		}
		cliCase{args: []string{"stop", "bbbb00000003"}, wantErr: []string{"session bbbb00000003 ended"}}.run(t)
		<-cDone
		if st := c.ProcessState.ExitCode(); st != 143 {
			t.Errorf("exit status %d, want 143", st)
		}
		for _, id := range []string{"bbbb00000001", "bbbb00000002", "bbbb00000003"} {
			if _, err := os.Stat(filepath.Join(root, id)); err == nil {
				t.Errorf("session directory %s left", id)
			}
		}
	})
}
