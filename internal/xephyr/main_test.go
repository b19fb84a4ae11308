package xephyr

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/testguest"
)

// Environment of the re-executed test binary acting as a launcher that gets
// SIGKILLed (TestXephyrDiesWithLauncher).
const (
	childEnv     = "XEPHYR_TEST_LAUNCHER"
	childAuthEnv = "XEPHYR_TEST_AUTH"
)

func TestMain(m *testing.M) {
	// xgb logs every closed connection ("A read error is unrecoverable:
	// EOF") on its global logger; keep test output readable.
	xgb.Logger = log.New(io.Discard, "", 0)
	if os.Getenv(childEnv) == "1" {
		launcherChild()
		return
	}
	os.Exit(m.Run())
}

// launcherChild starts Xephyr, prints its PID and waits to be killed.
func launcherChild() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{AuthFile: os.Getenv(childAuthEnv), Env: os.Environ()})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(s.PID)
	select {} // until SIGKILL
}

// A SIGKILLed launcher must not leave its Xephyr behind (Pdeathsig).
func TestXephyrDiesWithLauncher(t *testing.T) {
	host := startXvfb(t, "800x600x24", true)
	testguest.NeedProgram(t, "Xephyr", "xserver-xephyr")
	auth := writeAuth(t, "auth", wildEntry(newCookie(t)))
	// Become the subreaper for the orphaned Xephyr so this test reaps it
	// instead of leaving a zombie for init.
	if err := setSubreaper(true); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer func() { _ = setSubreaper(false) }()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(host.Env(), childEnv+"=1", childAuthEnv+"="+auth)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("launcher child: %q", line)
	}
	t.Cleanup(func() {
		if procfs.Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if !procfs.Alive(pid) {
		t.Fatalf("Xephyr pid %d not running before the launcher died", pid)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ws syscall.WaitStatus
		if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid || err == syscall.ECHILD && !procfs.Alive(pid) {
			return // exited (and reaped by us, or by init)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Xephyr pid %d outlived its SIGKILLed launcher", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func setSubreaper(on bool) error {
	v := uintptr(0)
	if on {
		v = 1
	}
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, v, 0); errno != 0 {
		return errno
	}
	return nil
}
