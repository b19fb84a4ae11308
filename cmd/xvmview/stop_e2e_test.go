package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestPsStop: ps lists a running session with its display and guest; stop
// ends it with the normal teardown, and the launcher exits 143.
func TestPsStop(t *testing.T) {
	w := newWorld(t, true)
	w.remoteProfile("e2e", "tcp")
	l := w.start("run", "e2e")
	s, _ := w.session(l)

	code, out, _ := w.runStdin("", "ps")
	if code != 0 {
		t.Fatalf("ps: exit %d", code)
	}
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == s.ID {
			row = f
		}
	}
	want := []string{s.ID, "e2e", ":" + strconv.Itoa(s.Display), w.g.User + "@" + w.g.Addr + ":22", strconv.Itoa(l.cmd.Process.Pid)}
	if len(row) != 6 || strings.Join(row[:5], " ") != strings.Join(want, " ") {
		t.Fatalf("ps row = %q, want %q and an uptime:\n%s", row, want, out)
	}

	code, _, errOut := w.runStdin("", "stop", "e2e")
	if code != 0 {
		t.Errorf("stop: exit %d, want 0", code)
	}
	wantAll(t, "stop stderr", errOut, "session "+s.ID+" ended")
	if st := l.wait(t); st != 143 {
		t.Errorf("launcher exit status %d, want 143", st)
	}
	w.checkGone(s)

	code, out, errOut = w.runStdin("", "ps")
	if code != 0 || strings.TrimSpace(out) != "" || !strings.Contains(errOut, "no sessions running") {
		t.Errorf("ps after stop: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
