package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/memcg"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/testguest"
)

// unreachableGuest is a guest target on a loopback port nothing listens on.
func unreachableGuest(t *testing.T) *guest.Target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	must(t, ln.Close())
	kh := filepath.Join(t.TempDir(), "known_hosts")
	must(t, os.WriteFile(kh, nil, 0o600))
	return &guest.Target{HostName: "127.0.0.1", Port: port, User: "u", KnownHostsFiles: []string{kh}}
}

// TestCleanStaleTries: a stale session whose guest entry cannot be removed
// is tried MaxCleanupTries times, each counted in its state with the
// reason, then left alone for FailedCleanups to report; CleanSession tries
// it once more when asked.
func TestCleanStaleTries(t *testing.T) {
	root := filepath.Join(t.TempDir(), "xvmview")
	must(t, ensurePrivateDir(root))
	dead := exec.Command("true")
	must(t, dead.Run())
	d, err := newSessionDir(root)
	must(t, err)
	must(t, d.writeState(&State{ID: d.ID, Profile: "web\033]2;x\007", LauncherPID: dead.Process.Pid, Display: 4,
		Guest: unreachableGuest(t), GuestDisplay: ":10", GuestEntry: true}))

	read := func() State {
		t.Helper()
		states, err := ReadStates(root)
		must(t, err)
		if len(states) != 1 {
			t.Fatalf("%d states, want the stale one", len(states))
		}
		return states[0]
	}
	var notices []string
	notice := func(f string, a ...any) { notices = append(notices, fmt.Sprintf(f, a...)) }
	for try := 1; try <= MaxCleanupTries+2; try++ {
		CleanStale(context.Background(), root, notice)
		s := read()
		if want := min(try, MaxCleanupTries); s.CleanupTries != want {
			t.Fatalf("after %d cleanups: %d tries recorded, want %d", try, s.CleanupTries, want)
		}
		if !strings.Contains(s.CleanupError, "127.0.0.1") {
			t.Errorf("CleanupError = %q, want the reason", s.CleanupError)
		}
		failed, err := FailedCleanups(root)
		must(t, err)
		if got, want := len(failed) == 1, try >= MaxCleanupTries; got != want {
			t.Errorf("after %d cleanups FailedCleanups = %v, want reported: %v", try, failed, want)
		}
	}
	if len(notices) != MaxCleanupTries {
		t.Errorf("%d notices, want one per try:\n%s", len(notices), strings.Join(notices, "\n"))
	}
	for _, n := range notices {
		if strings.ContainsAny(n, "\033\007\n") || !strings.Contains(n, `web^[]2;x^G`) {
			t.Errorf("notice not made visible: %q", n)
		}
	}

	// check reports it first, once, made visible.
	t.Setenv("PATH", t.TempDir())
	rs := Check(context.Background(), "nosuch", CheckEnv{Dirs: profile.Dirs{User: t.TempDir()}, RuntimeRoot: root})
	var fc *FailedCleanupError
	if len(rs) == 0 || rs[0].Name != "stale session" || rs[0].Status != StatusFail || !errors.As(rs[0].Err, &fc) || fc.Session.ID != d.ID {
		t.Errorf("Check's first result is %+v, want the failed cleanup of %s", rs[0], d.ID)
	} else if msg := fc.Error(); strings.ContainsAny(msg, "\033\007\n") || !strings.Contains(msg, `profile web^[]2;x^G`) || !strings.Contains(msg, "in 3 tries: ") {
		t.Errorf("FailedCleanupError = %q", msg)
	}
	if n := strings.Count(summary(rs), "stale session"); n != 1 {
		t.Errorf("Check reports %d stale sessions, want 1:\n%s", n, summary(rs))
	}

	err = CleanSession(context.Background(), root, d.ID)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("CleanSession = %v, want why it failed", err)
	}
	if s := read(); s.CleanupTries != MaxCleanupTries {
		t.Errorf("CleanSession left %d tries, want %d", s.CleanupTries, MaxCleanupTries)
	}
	var ns *NotStaleError
	if err := CleanSession(context.Background(), root, "nosuch"); !errors.As(err, &ns) {
		t.Errorf("CleanSession(nosuch) = %v, want *NotStaleError", err)
	}
	if err := CleanSession(context.Background(), root, "../x"); err == nil {
		t.Error("CleanSession took a path for an ID")
	}

	// Once the entry is gone (here: the record says so), it is cleaned up.
	s := read()
	s.GuestEntry = false
	must(t, (&sessionDir{Root: root, ID: s.ID, Path: filepath.Join(root, s.ID)}).writeState(&s))
	must(t, CleanSession(context.Background(), root, d.ID))
	if _, err := os.Stat(d.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("session directory left after a successful cleanup: %v", err)
	}
}

func TestHeadBuffer(t *testing.T) {
	var h headBuffer
	for range 1000 {
		n, err := h.Write([]byte("\033[6n 0123456789\n"))
		if n != 16 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if h.buf.Len() != headMax {
		t.Errorf("kept %d bytes, want the first %d", h.buf.Len(), headMax)
	}
	l := h.line()
	if strings.ContainsAny(l, "\033\n") || !strings.HasPrefix(l, "^[[6n 0123456789^J") || !strings.Contains(l, "more bytes]") {
		t.Errorf("line() = %q", l)
	}
	h.Reset()
	if h.line() != "" {
		t.Error("Reset kept text")
	}
}

// TestCleanStaleCgroup: the memory cgroup leaf of a session whose launcher
// died goes with its record.
func TestCleanStaleCgroup(t *testing.T) {
	probe := memcg.Probe(memcg.Config{NoScope: true})
	if len(probe) == 0 {
		testguest.Missing(t, "a memory cgroup this user can write", "run as root on a machine with the cgroup v1 memory controller or a delegated cgroup v2 subtree")
	}
	root := filepath.Join(t.TempDir(), "xvmview")
	must(t, ensurePrivateDir(root))
	dead := exec.Command("true")
	must(t, dead.Run())
	d, err := newSessionDir(root)
	must(t, err)
	// A leaf as Run makes it, for a process that has gone since.
	proc := exec.Command("sleep", "60")
	must(t, proc.Start())
	l, err := memcg.Apply(context.Background(), proc.Process.Pid, 64<<20, memcg.Config{Name: XephyrCgroupPrefix + d.ID, NoScope: true})
	_ = proc.Process.Kill()
	_ = proc.Wait()
	must(t, err)
	if !l.Owned() {
		t.Fatalf("Apply = %v, want a leaf", l)
	}
	t.Cleanup(func() { _ = os.Remove(l.Path) })
	must(t, d.writeState(&State{ID: d.ID, Profile: "web", LauncherPID: dead.Process.Pid, Display: -1, XephyrCgroup: l.Path}))
	var notices []string
	CleanStale(context.Background(), root, func(f string, a ...any) { notices = append(notices, fmt.Sprintf(f, a...)) })
	if _, err := os.Stat(l.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale leaf %s still there: %v (notices %q)", l.Path, err, notices)
	}
	if states, _ := ReadStates(root); len(states) != 0 {
		t.Errorf("records left: %+v", states)
	}
}
