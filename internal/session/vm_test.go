package session

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
)

func TestVMPlan(t *testing.T) {
	target := &guest.Target{Alias: "web", HostName: "10.1.0.2", Port: 22, User: "alice"}
	p := testProfile(t, "web", `host = "web"
command = ["firefox"]
vm = "web-domu"
vm_uri = "xen:///system"
shutdown_on_exit = true
boot_timeout = 30`)
	pl, err := NewPlan(p, nil, Facts{RuntimeRoot: "/run/user/1/xvmview", Guest: target})
	if err != nil {
		t.Fatal(err)
	}
	want := VM{URI: "xen:///system", Domain: "web-domu", Shutdown: profile.ShutdownStarted, BootTimeout: 30 * time.Second, ShutdownGrace: DefaultShutdownGrace}
	if pl.VM == nil || *pl.VM != want {
		t.Fatalf("plan's VM = %+v, want %+v", pl.VM, want)
	}
	var b bytes.Buffer
	if err := pl.Describe(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"vm:       domain web-domu at xen:///system: started if shut off, resumed if paused; then up to 30s for its sshd",
		"vm stop:  when the last session using it ends, if xvmview started it: ACPI shutdown, forced off after 1m0s",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("dry run lacks %q:\n%s", w, b.String())
		}
	}
	p = testProfile(t, "web", "host = \"web\"\ncommand = [\"firefox\"]")
	if pl, _ := NewPlan(p, nil, Facts{RuntimeRoot: "/r", Guest: target}); pl.VM != nil {
		t.Errorf("a profile without vm has plan VM %+v", pl.VM)
	}
}

// TestLockVM: the lock excludes a second holder, which waits until its
// context ends; unlocking removes the lock file, and the next lock works.
func TestLockVM(t *testing.T) {
	root := filepath.Join(t.TempDir(), "xvmview")
	ctx := context.Background()
	l, err := lockVM(ctx, root, "qemu:///system", "web")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = lockVM(short, root, "qemu:///system", "web")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want a deadline error", err)
	}
	other, err := lockVM(ctx, root, "qemu:///system", "other")
	if err != nil {
		t.Fatalf("another VM's lock: %v", err)
	}
	other.unlock()

	got := make(chan error, 1)
	go func() {
		l2, err := lockVM(ctx, root, "qemu:///system", "web")
		if err == nil {
			l2.unlock()
		}
		got <- err
	}()
	l.unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("waiting lock: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting lock did not get it after unlock")
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		t.Errorf("left in the runtime root: %s", e.Name())
	}
}

// TestVMUsers counts the live sessions of one VM, not the caller's own,
// nor those of another VM or a dead launcher.
func TestVMUsers(t *testing.T) {
	root := t.TempDir()
	write := func(s State) { t.Helper(); writeStateDir(t, root, s) }
	me := os.Getpid()
	ticks := startTicks(t, me)
	web := &VMUse{URI: "qemu:///system", Domain: "web", Started: true}
	write(State{ID: "self", LauncherPID: me, LauncherTime: ticks, VM: web})
	write(State{ID: "other", LauncherPID: me, LauncherTime: ticks, VM: &VMUse{URI: "qemu:///system", Domain: "web"}})
	write(State{ID: "xen", LauncherPID: me, LauncherTime: ticks, VM: &VMUse{URI: "xen:///system", Domain: "web"}})
	write(State{ID: "dead", LauncherPID: me, LauncherTime: ticks + 1, VM: web})
	write(State{ID: "novm", LauncherPID: me, LauncherTime: ticks})
	users, err := vmUsers(root, "self", web)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].ID != "other" {
		t.Errorf("vmUsers = %+v, want just the session \"other\"", users)
	}
}
