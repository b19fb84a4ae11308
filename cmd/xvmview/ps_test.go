package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/session"
)

// startTicks reads a process's start time (field 22 of /proc/PID/stat), as
// the launcher records it.
func startTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	st, err := procfs.ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.StartTicks
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

// TestPsVM: a session with a VM adds the VM column, with the state libvirt
// gives (here none: no daemon on the profile's socket).
func TestPsVM(t *testing.T) {
	_, root := everydayHome(t)
	me := os.Getpid()
	ticks := startTicks(t, me)
	uri := "qemu:///system?socket=" + filepath.Join(t.TempDir(), "none")
	writeState(t, root, session.State{ID: "aaaa00000001", Profile: "web", LauncherPID: me, LauncherTime: ticks,
		Started: time.Now(), Display: 7, Guest: &guest.Target{HostName: "10.0.0.2", Port: 22, User: "alice"},
		VM: &session.VMUse{URI: uri, Domain: "web-domu", Started: true, Ready: true}})
	writeState(t, root, session.State{ID: "aaaa00000002", Profile: "demo", LauncherPID: me, LauncherTime: ticks, Started: time.Now(), Display: 8})
	code, out, errOut := runCLI(t, "ps")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "UPTIME  VM") ||
		!strings.HasSuffix(lines[1], "web-domu (unknown (no libvirt daemon))") || !strings.HasSuffix(lines[2], " -") {
		t.Errorf("ps:\n%s", out)
	}
}
