package xephyr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// fakeXephyr writes a shell script standing in for Xephyr, to drive Start
// through startup paths a real Xephyr cannot be made to take on demand.
// The script writes its PID to the file returned second.
func fakeXephyr(t *testing.T, body string) (bin, pidFile string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "Xephyr")
	pidFile = filepath.Join(dir, "pid")
	// Written aside and renamed, so the file never exists empty.
	script := "#!/bin/sh\necho $$ > " + pidFile + ".tmp && mv " + pidFile + ".tmp " + pidFile + "\n" + body + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return bin, pidFile
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fake Xephyr never ran: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func fakeOptions(t *testing.T, bin string) Options {
	return Options{Binary: bin, AuthFile: writeAuth(t, "auth", wildEntry(newCookie(t)))}
}

func TestStartCanceledWhileWaiting(t *testing.T) {
	// Never becomes ready; holds fd 3 open so only ctx can end the wait.
	bin, pidFile := fakeXephyr(t, "exec sleep 60")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the fake runs, so Start is surely waiting.
		for range 2000 {
			if _, err := os.Stat(pidFile); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	s, err := Start(ctx, fakeOptions(t, bin))
	if err == nil {
		_ = s.Close()
		t.Fatal("Start succeeded for a server that never got ready")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start error = %v, want context.Canceled", err)
	}
	if pid := readPID(t, pidFile); !processGone(pid) {
		t.Errorf("fake Xephyr pid %d still running after Start gave up", pid)
	}
}

func TestStartGarbageOnDisplayFD(t *testing.T) {
	bin, pidFile := fakeXephyr(t, "echo banana >&3; exec sleep 60")
	_, err := Start(testCtx(t), fakeOptions(t, bin))
	if err == nil || !strings.Contains(err.Error(), `"banana\n"`) {
		t.Fatalf("Start error = %v, want one quoting the garbage", err)
	}
	if pid := readPID(t, pidFile); !processGone(pid) {
		t.Errorf("fake Xephyr pid %d still running", pid)
	}
}

func TestStartDiesDuringStartup(t *testing.T) {
	bin, _ := fakeXephyr(t, "echo 'noise' >&2; echo 'Xephyr cannot open host display. Is DISPLAY set?' >&2; exit 1")
	_, err := Start(testCtx(t), fakeOptions(t, bin))
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Start error = %v, want *ExitError", err)
	}
	if ee.Display != -1 || ee.Err == nil || !strings.Contains(ee.Stderr, "cannot open host display") {
		t.Errorf("ExitError = %+v", ee)
	}
	if !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("Error() = %q, want the exit status", err)
	}
}

func TestServerCrashAfterStart(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "crash-now")
	bin, _ := fakeXephyr(t, "echo 7 >&3; exec 3>&-; while [ ! -e "+gate+" ]; do sleep 0.01; done; "+
		"echo 'Fatal server error: boom' >&2; exit 3")
	o := fakeOptions(t, bin)
	stderr := testguest.NewLogBuffer(1 << 20)
	o.Stderr = stderr
	s, err := Start(testCtx(t), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Close()
	if s.Display != 7 {
		t.Errorf("Display = %d, want 7", s.Display)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err() while running = %v", err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-testCtx(t).Done():
		t.Fatal("Done never closed")
	}
	var ee *ExitError
	if err := s.Err(); !errors.As(err, &ee) || ee.Display != 7 || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Err() = %v, want an *ExitError for :7 with the exit status and stderr", err)
	}
	if !strings.Contains(stderr.String(), "boom") {
		t.Errorf("Options.Stderr got %q", stderr.String())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after crash: %v", err)
	}
}
