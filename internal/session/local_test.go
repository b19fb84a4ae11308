package session

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/procfs"
)

func TestLocalProcStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv []string
		want int
	}{
		{"exit 0", []string{"sh", "-c", "exit 0"}, 0},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := startLocal(nil, nil, tc.argv, nil, nil, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("no exit")
			}
			st, err := p.Wait()
			if err != nil || st != tc.want {
				t.Errorf("Wait = %d, %v; want %d, nil", st, err, tc.want)
			}
			if err := p.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

// TestLocalProcCloseAfterExitSparesReusedGroup: a program that exited long
// before the teardown (a window manager that quit at startup) must not have
// its process group number signalled once that number may belong to someone
// else. Either the number stays reserved until Close, or Close leaves the
// new owner alone.
func TestLocalProcCloseAfterExitSparesReusedGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to steer PID allocation through ns_last_pid")
	}
	p, err := startLocal(nil, nil, []string{"sh", "-c", "exit 0"}, nil, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.cmd.Process.Pid
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("no exit")
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	var other *exec.Cmd
	for range 200 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot steer PIDs: %v", err)
		}
		c := exec.Command("sleep", "60")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if c.Process.Pid == pid {
			other = c
			break
		}
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	if other == nil {
		// The number stayed reserved: the exited leader is kept as a zombie
		// until Close.
		if _, err := procfs.ReadStat(pid); errors.Is(err, fs.ErrNotExist) {
			t.Skip("could not get the PID again, though it is free (busy machine?)")
		}
	} else {
		t.Logf("pid %d went to an unrelated process group", pid)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if other != nil {
		exited := make(chan error, 1)
		go func() { exited <- other.Wait() }()
		select {
		case err := <-exited:
			other = nil
			t.Fatalf("Close killed process group %d, which had been given to an unrelated process (%v)", pid, err)
		case <-time.After(500 * time.Millisecond):
		}
		_ = other.Process.Kill()
		<-exited
		other = nil
	}
	if _, err := procfs.ReadStat(pid); err == nil {
		t.Errorf("pid %d is still there after Close: the zombie was not reaped", pid)
	}
}
