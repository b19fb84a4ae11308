package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/testguest"
)

// Run for a local profile, end to end but without root: a private Xvfb as
// the host display, a real Xephyr in it, the app a real process here.

// localRun is one Run of a local profile in the background.
type localRun struct {
	t      *testing.T
	x      *testguest.Xvfb // the host display
	root   string
	cancel context.CancelFunc
	done   chan struct{}
	res    Result
	err    error

	mu      sync.Mutex
	phases  []string
	started chan struct{} // closed when the app has started
}

// startLocalRun runs command (sh -c) as a local profile's app on a fresh
// Xvfb, with the default timeouts.
func startLocalRun(t *testing.T, command string) *localRun {
	t.Helper()
	testguest.NeedProgram(t, "Xephyr", "xserver-xephyr")
	x := testguest.StartXvfb(t, testguest.XvfbOptions{})
	p := testProfile(t, "runtest", fmt.Sprintf("host = \"local\"\ncommand = [\"sh\", \"-c\", %q]\n", command))
	root := filepath.Join(t.TempDir(), "run")
	pl, err := NewPlan(p, nil, Facts{RuntimeRoot: root, HostEnv: append(os.Environ(), x.Env()...), Hostname: "runtest-host"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &localRun{t: t, x: x, root: root, cancel: cancel, done: make(chan struct{}), started: make(chan struct{})}
	o := Options{Progress: func(phase string, _ time.Duration) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.phases = append(r.phases, phase)
		if strings.HasPrefix(phase, "started ") {
			close(r.started)
		}
	}}
	go func() {
		defer close(r.done)
		r.res, r.err = Run(ctx, pl, o)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// waitStarted waits until the app runs and returns the session's state.
func (r *localRun) waitStarted() State {
	r.t.Helper()
	select {
	case <-r.started:
	case <-r.done:
		r.t.Fatalf("Run ended before the app started: %+v, %v", r.res, r.err)
	case <-time.After(60 * time.Second):
		r.t.Fatal("the app did not start within 60 s")
	}
	states, err := ReadStates(r.root)
	// The phase comes just before the state says Running; its Xephyr is
	// recorded already.
	if err != nil || len(states) != 1 || states[0].XephyrPID <= 0 {
		r.t.Fatalf("states = %+v (err %v), want one session with Xephyr", states, err)
	}
	return states[0]
}

// wait waits for Run to return.
func (r *localRun) wait() (Result, error) {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		r.t.Fatal("Run did not return within 60 s")
	}
	return r.res, r.err
}

// checkCleanedUp: nothing of the session is left, Xephyr included.
func (r *localRun) checkCleanedUp(s State) {
	r.t.Helper()
	if ents, err := os.ReadDir(r.root); err != nil || len(ents) != 0 {
		r.t.Errorf("runtime root holds %v (err %v), want nothing", ents, err)
	}
	if s.XephyrPID > 0 {
		if err := syscall.Kill(s.XephyrPID, 0); !errors.Is(err, syscall.ESRCH) {
			r.t.Errorf("Xephyr (pid %d) still runs (kill 0: %v)", s.XephyrPID, err)
		}
	}
}

// TestRunLocalEnds: each way a session ends gives its End, and every way
// tears the whole session down.
func TestRunLocalEnds(t *testing.T) {
	t.Run("app exits with its status", func(t *testing.T) {
		r := startLocalRun(t, "exit 7")
		res, err := r.wait()
		if err != nil || res.End != EndApp || res.Status != 7 || res.Display <= 0 {
			t.Errorf("Run = %+v, %v; want the app's exit with status 7 on a display", res, err)
		}
		r.checkCleanedUp(State{})
	})
	t.Run("Xephyr killed", func(t *testing.T) {
		r := startLocalRun(t, "exec sleep 60")
		s := r.waitStarted()
		// The window closing and the server dying look the same to Run:
		// Xephyr exits.
		if err := syscall.Kill(s.XephyrPID, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		res, err := r.wait()
		if err != nil || res.End != EndXephyr {
			t.Errorf("Run = %+v, %v; want EndXephyr", res, err)
		}
		r.checkCleanedUp(s)
	})
	t.Run("context canceled", func(t *testing.T) {
		r := startLocalRun(t, "exec sleep 60")
		s := r.waitStarted()
		r.cancel()
		res, err := r.wait()
		if err != nil || res.End != EndCanceled {
			t.Errorf("Run = %+v, %v; want EndCanceled", res, err)
		}
		r.checkCleanedUp(s)
	})
	t.Run("frame closed by the user", func(t *testing.T) {
		r := startLocalRun(t, "exec sleep 60")
		s := r.waitStarted()
		// The window manager's close button: WM_DELETE_WINDOW to the frame.
		var frame uint32
		r.mu.Lock()
		for _, p := range r.phases {
			if _, err := fmt.Sscanf(p, "window frame 0x%x drawn", &frame); err == nil {
				break
			}
		}
		r.mu.Unlock()
		if frame == 0 {
			t.Fatalf("no frame in the phases %q", r.phases)
		}
		nc, err := net.Dial("unix", fmt.Sprintf("/tmp/.X11-unix/X%d", r.x.Num))
		if err != nil {
			t.Fatal(err)
		}
		host, err := xgb.NewConnNetWithCookieHex(nc, strings.Repeat("00", 16))
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		protocols, err1 := xproto.InternAtom(host, false, 12, "WM_PROTOCOLS").Reply()
		del, err2 := xproto.InternAtom(host, false, 16, "WM_DELETE_WINDOW").Reply()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		ev := xproto.ClientMessageEvent{Format: 32, Window: xproto.Window(frame), Type: protocols.Atom,
			Data: xproto.ClientMessageDataUnionData32New([]uint32{uint32(del.Atom), 0, 0, 0, 0})}
		if err := xproto.SendEventChecked(host, false, xproto.Window(frame), 0, string(ev.Bytes())).Check(); err != nil {
			t.Fatal(err)
		}
		res, err := r.wait()
		if err != nil || res.End != EndXephyr {
			t.Errorf("Run = %+v, %v; want EndXephyr", res, err)
		}
		r.checkCleanedUp(s)
		// The frame's connection closes in the background.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := xproto.GetWindowAttributes(host, xproto.Window(frame)).Reply(); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the frame 0x%x is still on the host display 10 s after the session", frame)
			}
		}
	})
	t.Run("setup fails", func(t *testing.T) {
		// An app that is not installed: the launch fails after Xephyr has
		// started, so the teardown has something to undo.
		testguest.NeedProgram(t, "Xephyr", "xserver-xephyr")
		x := testguest.StartXvfb(t, testguest.XvfbOptions{})
		p := testProfile(t, "runtest", "host = \"local\"\ncommand = [\"/nonexistent/xvmview-app\"]\n")
		root := filepath.Join(t.TempDir(), "run")
		pl, err := NewPlan(p, nil, Facts{RuntimeRoot: root, HostEnv: append(os.Environ(), x.Env()...)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), pl, Options{})
		if err == nil || res.End != EndNone || !strings.Contains(err.Error(), "xvmview-app") {
			t.Errorf("Run = %+v, %v; want an error naming the app and EndNone", res, err)
		}
		(&localRun{t: t, root: root}).checkCleanedUp(State{})
	})
}

// TestEndZero: the zero End means the session has not ended.
func TestEndZero(t *testing.T) {
	var e End
	if e != EndNone || e.String() != "not ended" {
		t.Errorf("zero End = %d %q, want EndNone \"not ended\"", e, e)
	}
	for _, e := range []End{EndApp, EndXephyr, EndGuestLost, EndCanceled} {
		if e == EndNone {
			t.Errorf("End %q is the zero value", e)
		}
	}
}

// TestGuestProcGrace: the guest's programs get the configured grace
// between SIGTERM and SIGKILL, and the session's output.
func TestGuestProcGrace(t *testing.T) {
	var out, errOut strings.Builder
	r := &runner{pl: Plan{Timeouts: Timeouts{Grace: 7 * time.Second}}, o: Options{Stdout: &out, Stderr: &errOut}}
	spec := r.guestProc([]string{"DISPLAY=localhost:10"}, []string{"xterm"})
	if spec.Grace != 7*time.Second || spec.Stdout != &out || spec.Stderr != &errOut || spec.Argv[0] != "xterm" || spec.Env[0] != "DISPLAY=localhost:10" {
		t.Errorf("guestProc = %+v, want the plan's grace 7s, the session's output, the argv and env", spec)
	}
}

// TestRunMemoryCgroup: a session's Xephyr runs in a memory cgroup leaf
// named after the session (no systemd here), recorded in its state for
// crash recovery and reported as a phase; the leaf goes with the session.
func TestRunMemoryCgroup(t *testing.T) {
	if !strings.Contains(ProbeMemory(nil), "cgroup") {
		testguest.Missing(t, "a memory cgroup this user can write", "run as root on a machine with the cgroup v1 memory controller or a delegated cgroup v2 subtree")
	}
	// The cgroup path even on a desktop whose systemd would answer.
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	r := startLocalRun(t, "exec sleep 60")
	s := r.waitStarted()
	if filepath.Base(s.XephyrCgroup) != XephyrCgroupPrefix+s.ID {
		t.Fatalf("state's XephyrCgroup = %q, want a leaf named %s%s", s.XephyrCgroup, XephyrCgroupPrefix, s.ID)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", s.XephyrPID))
	if err != nil || !strings.Contains(string(b), "/"+XephyrCgroupPrefix+s.ID+"\n") {
		t.Errorf("Xephyr's /proc/PID/cgroup = %q (%v), want the leaf", b, err)
	}
	r.mu.Lock()
	var phase string
	for _, p := range r.phases {
		if strings.HasPrefix(p, "Xephyr's memory limit: ") {
			phase = p
		}
	}
	r.mu.Unlock()
	if !strings.Contains(phase, "RLIMIT_DATA ") || !strings.Contains(phase, s.XephyrCgroup) {
		t.Errorf("memory phase = %q, want RLIMIT_DATA and the leaf", phase)
	}
	r.cancel()
	if _, err := r.wait(); err != nil {
		t.Errorf("Run: %v", err)
	}
	r.checkCleanedUp(s)
	if _, err := os.Stat(s.XephyrCgroup); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leaf %s still there after the session: %v", s.XephyrCgroup, err)
	}
}
