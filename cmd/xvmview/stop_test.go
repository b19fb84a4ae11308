package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/session"
)

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
		{name: "stale is cleaned up", args: []string{"stop", "old"},
			wantErr: []string{"session dead00000003 (profile old) is not running: cleaning up after it", "xvmview: cleaned up after session dead00000003"}},
		{name: "then it is gone", args: []string{"stop", "old"}, wantCode: 1,
			wantErr: []string{`no running session with ID or profile "old"`}},
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
