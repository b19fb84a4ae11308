package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
)

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
				k.marks = checkMarks[desktop.Terminal(w)]
			}
			k.line(session.StatusOK, "a", "fine", nil, "")
			k.line(session.StatusFail, "b", "broken", nil, "fix it")
			k.line(session.StatusSkip, "c", "needs b", nil, "")
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

// TestCheckLineGuestText: a check's error can quote bytes from the other
// end (a ProxyCommand's stderr, where `ssh -W` prints a jump host's banner,
// goes into "guest reachable"'s error raw): they are shown, not obeyed, and
// cannot forge a line.
func TestCheckLineGuestText(t *testing.T) {
	var b bytes.Buffer
	k := newChecker(&b)
	evil := "\x1b]2;owned\x07\x1b[2J\nok   login: forged"
	k.line(session.StatusFail, "guest reachable", "cannot reach guest at web:22: ProxyCommand exited: "+evil,
		[]string{"detail " + evil}, "hint "+evil)
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("a control byte from the guest reached the output:\n%q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "FAIL guest reachable: ") {
		t.Fatalf("want a result, a detail and a hint:\n%s", out)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "     ") {
			t.Errorf("the guest forged a check line %q:\n%s", l, out)
		}
	}
}

// TestCheckFailedCleanup: a stale session whose cleanup failed for good is
// reported by check once, first, with what failed made visible and a hint
// naming it; one still being retried is not.
func TestCheckFailedCleanup(t *testing.T) {
	home, root := everydayHome(t)
	writeProfile(t, home, "loc", "host = \"local\"\ncommand = [\"sh\"]\n")
	me := os.Getpid()
	ticks := startTicks(t, me)
	g := &guest.Target{HostName: "10.0.0.2", Port: 2222, User: "alice"}
	writeState(t, root, session.State{ID: "dead00000009", Profile: "victim", LauncherPID: me, LauncherTime: ticks + 1,
		Display: 3, Guest: g, GuestDisplay: ":17", GuestEntry: true,
		CleanupTries: session.MaxCleanupTries, CleanupError: "xauth: \x1b[31mred\r\nok   login: forged"})
	writeState(t, root, session.State{ID: "dead00000010", Profile: "retried", LauncherPID: me, LauncherTime: ticks + 1,
		Display: 4, Guest: g, GuestDisplay: ":18", GuestEntry: true, CleanupTries: 1, CleanupError: "try 1"})
	code, out, errOut := runCLI(t, "check", "loc")
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	line := "FAIL stale session: session dead00000009 (profile victim, guest alice@10.0.0.2:2222 display :17) " +
		"left what its cleanup could not undo in 3 tries: xauth: ^[[31mred^M^Jok   login: forged\n" +
		"     hint: fix the guest (is it up? does its xauth work?), then retry with 'xvmview stop dead00000009'\n"
	if !strings.HasPrefix(out, line) || strings.Count(out, "stale session") != 1 {
		t.Errorf("stdout does not start with the failed cleanup, once:\n%s\nwant first:\n%s", out, line)
	}
	if strings.Contains(out, "dead00000010") || strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("stdout reports the session still retried, or a control:\n%q", out)
	}
}

// TestCheckHintLines: a hint with alternatives gets one indented line each.
func TestCheckHintLines(t *testing.T) {
	var b bytes.Buffer
	newChecker(&b).line(session.StatusFail, "b", "broken", nil, "fix it here\nor there")
	if want := "FAIL b: broken\n     hint: fix it here\n     hint: or there\n"; b.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", b.String(), want)
	}
}
