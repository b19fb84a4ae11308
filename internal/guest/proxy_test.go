package guest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProxyCloseReaps: Close ends a ProxyCommand that ignores the end of
// its input (nc without -q, here a sleep and its child) and returns once it
// is gone, so that the launcher's exit leaves nothing running.
func TestProxyCloseReaps(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	conn, err := startProxy(context.Background(), "sleep 60 & echo $$ $! > "+pids+"; wait", "guest:22")
	if err != nil {
		t.Fatal(err)
	}
	var procs []int
	deadline := time.Now().Add(10 * time.Second)
	for len(procs) < 2 {
		if time.Now().After(deadline) {
			conn.Close()
			t.Fatal("the ProxyCommand did not start")
		}
		if b, err := os.ReadFile(pids); err == nil && strings.HasSuffix(string(b), "\n") {
			for _, f := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(f)
				procs = append(procs, n)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		for _, pid := range procs {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	start := time.Now()
	conn.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	// The shell is our child: gone means reaped.
	if syscall.Kill(procs[0], 0) == nil {
		t.Errorf("the ProxyCommand's shell %d is still there after Close", procs[0])
	}
	// The sleep is its child, killed with the group (SIGKILL may take a
	// moment to end it under load) and reaped by init.
	deadline = time.Now().Add(10 * time.Second)
	for syscall.Kill(procs[1], 0) == nil {
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(procs[1]) + "/stat")
		if strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ProxyCommand's child %d still runs 10 s after Close: %s", procs[1], st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
