package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/procfs"
)

func TestEnsurePrivateDir(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		name    string
		setup   func(path string) error
		wantErr string
	}{
		{"created", func(string) error { return nil }, ""},
		{"existing private", func(p string) error { return os.Mkdir(p, 0o700) }, ""},
		{"group writable", func(p string) error {
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			return os.Chmod(p, 0o770)
		}, "mode 0770"},
		{"symlink", func(p string) error {
			d := filepath.Join(base, "elsewhere")
			if err := os.Mkdir(d, 0o700); err != nil {
				return err
			}
			return os.Symlink(d, p)
		}, "not a directory"},
		{"other owner", func(p string) error {
			if os.Getuid() != 0 {
				return errSkip
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			return os.Chown(p, 65534, 65534)
		}, "owned by uid 65534"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(base, strings.ReplaceAll(tc.name, " ", "-"))
			if err := tc.setup(p); errors.Is(err, errSkip) {
				t.Skip("needs root to chown")
			} else if err != nil {
				t.Fatal(err)
			}
			err := ensurePrivateDir(p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(p)
				if err != nil || fi.Mode().Perm() != 0o700 {
					t.Fatalf("mode %v, err %v", fi.Mode(), err)
				}
				return
			}
			var ue *UnsafeDirError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err %v, want *UnsafeDirError naming %s and %q", err, p, tc.wantErr)
			}
		})
	}
}

var errSkip = errors.New("skip")

func TestStateAlive(t *testing.T) {
	ticks := startTicks(t, os.Getpid())
	if !(State{LauncherPID: os.Getpid(), LauncherTime: ticks}).Alive() {
		t.Error("this process is not alive")
	}
	if (State{LauncherPID: os.Getpid(), LauncherTime: ticks + 1}).Alive() {
		t.Error("a reused PID counts as alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if (State{LauncherPID: cmd.Process.Pid}).Alive() {
		t.Error("an ended process is alive")
	}
}

// TestCleanStale plants the remains of a killed launcher: a state file and a
// process whose argv names the session's auth file (standing in for its
// Xephyr), next to a live session and an unrelated process. Only the stale
// session is cleaned.
func TestCleanStale(t *testing.T) {
	root := filepath.Join(t.TempDir(), "xvmview")
	if err := ensurePrivateDir(root); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}

	stale, err := newSessionDir(root)
	if err != nil {
		t.Fatal(err)
	}
	fake := exec.Command("sh", "-c", "sleep 60; :", stale.file("server.xauth"))
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	fakeDone := make(chan error, 1)
	go func() { fakeDone <- fake.Wait() }()
	t.Cleanup(func() { _ = fake.Process.Kill() })
	must(t, stale.writeState(&State{ID: stale.ID, Profile: "p", LauncherPID: dead.Process.Pid, XephyrPID: fake.Process.Pid, Display: 7}))

	bystander := exec.Command("sleep", "60")
	must(t, bystander.Start())
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })
	stale2, err := newSessionDir(root)
	must(t, err)
	must(t, stale2.writeState(&State{ID: stale2.ID, Profile: "q", LauncherPID: dead.Process.Pid, XephyrPID: bystander.Process.Pid}))

	live, err := newSessionDir(root)
	must(t, err)
	ticks := startTicks(t, os.Getpid())
	must(t, live.writeState(&State{ID: live.ID, LauncherPID: os.Getpid(), LauncherTime: ticks}))

	var notices []string
	CleanStale(context.Background(), root, func(f string, a ...any) { notices = append(notices, f) })

	select {
	case <-fakeDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the stale session's server process was not ended")
	}
	if err := syscall.Kill(bystander.Process.Pid, 0); err != nil {
		t.Error("a process that is not the session's server was killed")
	}
	for _, d := range []*sessionDir{stale, stale2} {
		if _, err := os.Stat(d.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale session dir %s remains", d.Path)
		}
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Errorf("live session dir was removed: %v", err)
	}
	if len(notices) != 2 {
		t.Errorf("notices %q, want two", notices)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCleanStaleClaims: a session another launch is cleaning right now
// (a fresh claim) is left to it; a claim whose cleaner died is taken back
// and cleaned.
func TestCleanStaleClaims(t *testing.T) {
	root := filepath.Join(t.TempDir(), "xvmview")
	must(t, ensurePrivateDir(root))
	dead := exec.Command("true")
	must(t, dead.Run())

	mk := func(name string, age time.Duration) string {
		p := filepath.Join(root, name)
		must(t, os.Mkdir(p, 0o700))
		b, _ := json.Marshal(State{ID: strings.TrimPrefix(name, claimPrefix), LauncherPID: dead.Process.Pid, Display: 5})
		must(t, os.WriteFile(filepath.Join(p, stateName), b, 0o600))
		old := time.Now().Add(-age)
		must(t, os.Chtimes(p, old, old))
		return p
	}
	fresh := mk(claimPrefix+"aaaa", 0)
	abandoned := mk(claimPrefix+"bbbb", 2*staleAge)

	var notices []string
	CleanStale(context.Background(), root, func(f string, a ...any) { notices = append(notices, fmt.Sprintf(f, a...)) })

	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh claim of another cleaner was touched: %v", err)
	}
	for _, p := range []string{abandoned, filepath.Join(root, "bbbb")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s remains after its cleaner died", p)
		}
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "bbbb") {
		t.Errorf("notices %q, want one for bbbb", notices)
	}
}

func TestDisplayInUse(t *testing.T) {
	g := func(host string) *guest.Target { return &guest.Target{HostName: host, Port: 22, User: "u"} }
	stale := State{Guest: g("web"), GuestDisplay: ":10"}
	tests := []struct {
		name string
		live []State
		want bool
	}{
		{"none", nil, false},
		{"same guest and display", []State{{Guest: g("web"), GuestDisplay: ":10"}}, true},
		{"other display", []State{{Guest: g("web"), GuestDisplay: ":11"}}, false},
		{"other guest", []State{{Guest: g("mail"), GuestDisplay: ":10"}}, false},
		{"local session", []State{{GuestDisplay: ""}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := displayInUse(stale, tc.live); got != tc.want {
				t.Errorf("displayInUse = %v, want %v", got, tc.want)
			}
		})
	}
}

// startTicks is pid's start time, as a launcher records it.
// writeStateDir makes the session directory of s under root with its state
// file, as a launcher would.
func writeStateDir(t *testing.T, root string, s State) {
	t.Helper()
	d := &sessionDir{Root: root, ID: s.ID, Path: filepath.Join(root, s.ID)}
	if err := os.Mkdir(d.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.writeState(&s); err != nil {
		t.Fatal(err)
	}
}

func startTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	st, err := procfs.ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.StartTicks
}
