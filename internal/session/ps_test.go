package session

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// fakeLauncher is a shell that stands in for a launcher: it records a state
// for itself in root/ID and behaves on SIGTERM as script's trap says ($1 is
// the session directory). It writes $1/ready once the trap is set.
type fakeLauncher struct {
	cmd   *exec.Cmd
	state State
	dir   string
	done  chan struct{}
}

func startFakeLauncher(t *testing.T, root, id, trap string) *fakeLauncher {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", trap+`; : > "$1/ready"; while :; do sleep 0.05; done`, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its sleeps go with it at cleanup
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &fakeLauncher{cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-l.done
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fake launcher did not start")
		}
	}
	ticks := startTicks(t, cmd.Process.Pid)
	l.state = State{ID: id, Profile: "p", LauncherPID: cmd.Process.Pid, LauncherTime: ticks, Started: time.Now(), Display: 7}
	d := &sessionDir{Root: root, ID: id, Path: dir}
	if err := d.writeState(&l.state); err != nil {
		t.Fatal(err)
	}
	return l
}

// exitCode waits for the fake launcher and returns its exit status.
func (l *fakeLauncher) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("fake launcher still runs")
	}
	return l.cmd.ProcessState.ExitCode()
}

func (l *fakeLauncher) running() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

func TestLive(t *testing.T) {
	root := t.TempDir()
	write := func(s State) { t.Helper(); writeStateDir(t, root, s) }
	me := os.Getpid()
	ticks := startTicks(t, me)
	now := time.Now()
	write(State{ID: "newer", Profile: "a", LauncherPID: me, LauncherTime: ticks, Started: now})
	write(State{ID: "older", Profile: "b", LauncherPID: me, LauncherTime: ticks, Started: now.Add(-time.Hour)})
	write(State{ID: "reused-pid", Profile: "c", LauncherPID: me, LauncherTime: ticks + 1, Started: now})
	// A directory a launch has just made, and one a launch left long ago.
	for _, id := range []string{"young", "abandoned"} {
		if err := os.Mkdir(filepath.Join(root, id), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	past := now.Add(-2 * staleAge)
	if err := os.Chtimes(filepath.Join(root, "abandoned"), past, past); err != nil {
		t.Fatal(err)
	}

	live, stale, err := Live(root)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ss []State) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	if got, want := ids(live), []string{"older", "newer"}; !slices.Equal(got, want) {
		t.Errorf("live = %q, want %q (oldest first)", got, want)
	}
	if got, want := ids(stale), []string{"abandoned", "reused-pid"}; !slices.Equal(got, want) {
		t.Errorf("stale = %q, want %q", got, want)
	}

	t.Run("missing root", func(t *testing.T) {
		live, stale, err := Live(filepath.Join(root, "nope"))
		if err != nil || live != nil || stale != nil {
			t.Errorf("Live(missing) = %v, %v, %v; want nothing", live, stale, err)
		}
	})
}

func TestStop(t *testing.T) {
	tests := []struct {
		name       string
		trap       string
		timeout    time.Duration
		wantErr    any // nil, or a pointer to the wanted error type
		wantCtxErr bool
		wantStatus int // -1: still running after Stop
		wantDir    bool
	}{
		{name: "teardown removes the directory", trap: `trap 'rm -rf "$1"; exit 143' TERM`, wantStatus: 143},
		{name: "teardown leaves the directory", trap: `trap 'exit 143' TERM`, wantErr: new(*IncompleteError), wantStatus: 143, wantDir: true},
		{name: "launcher ignores SIGTERM", trap: `trap '' TERM`, timeout: 500 * time.Millisecond, wantCtxErr: true, wantStatus: -1, wantDir: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			l := startFakeLauncher(t, root, "s1", tt.trap)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := Stop(ctx, root, l.state)
			switch {
			case tt.wantCtxErr:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Stop = %v, want the context's deadline", err)
				}
			case tt.wantErr != nil:
				if !errors.As(err, tt.wantErr) {
					t.Errorf("Stop = %v, want %T", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("Stop = %v, want nil", err)
			}
			if tt.wantStatus < 0 {
				if !l.running() {
					t.Error("launcher exited")
				}
			} else if st := l.exitCode(t); st != tt.wantStatus {
				t.Errorf("launcher exit status %d, want %d", st, tt.wantStatus)
			}
			if _, err := os.Stat(l.dir); (err == nil) != tt.wantDir {
				t.Errorf("session directory exists: %v, want %v", err == nil, tt.wantDir)
			}
		})
	}

	t.Run("reused PID is not signalled", func(t *testing.T) {
		root := t.TempDir()
		l := startFakeLauncher(t, root, "s1", `trap 'rm -rf "$1"; exit 143' TERM`)
		st := l.state
		st.LauncherTime++ // another incarnation of the PID
		var nr *NotRunningError
		if err := Stop(context.Background(), root, st); !errors.As(err, &nr) {
			t.Errorf("Stop = %v, want *NotRunningError", err)
		}
		if !l.running() {
			t.Error("the process with the reused PID was stopped")
		}
	})

	t.Run("already ended", func(t *testing.T) {
		root := t.TempDir()
		l := startFakeLauncher(t, root, "s1", `trap 'rm -rf "$1"; exit 143' TERM`)
		if err := syscall.Kill(l.cmd.Process.Pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		l.exitCode(t)
		if err := Stop(context.Background(), root, l.state); err != nil {
			t.Errorf("Stop of an ended session = %v, want nil", err)
		}
	})

	t.Run("bad id", func(t *testing.T) {
		if err := Stop(context.Background(), t.TempDir(), State{ID: "../x", LauncherPID: os.Getpid()}); err == nil {
			t.Error("Stop accepted an id with a path in it")
		}
	})
}
