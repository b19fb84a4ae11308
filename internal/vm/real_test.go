package vm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/testvm"
	"github.com/xvmview/xvmview/internal/vm"
)

// TestRealDomain drives a real libvirt QEMU domain through its life: off,
// started, its sshd waited for, paused and resumed, shut down by the ACPI
// button; and the errors for an unknown domain and a boot that times out.
func TestRealDomain(t *testing.T) {
	tv := testvm.Start(t, testvm.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := vm.Connect(ctx, testvm.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("unknown domain", func(t *testing.T) {
		_, err := c.State(ctx, "no-such-domain-xvmtest")
		var ue *vm.UnknownDomainError
		if !errors.As(err, &ue) {
			t.Fatalf("State of an unknown domain: %v, want *UnknownDomainError", err)
		}
		if !strings.Contains(strings.Join(ue.Known, " "), tv.Domain) {
			t.Errorf("the error does not list the domains there are (%s): %q", tv.Domain, ue.Known)
		}
	})

	if st, err := c.State(ctx, tv.Domain); err != nil || st != vm.ShutOff {
		t.Fatalf("new test domain: state %v, %v; want shut off", st, err)
	}

	t.Run("boot timeout", func(t *testing.T) {
		before, action, err := c.Up(ctx, tv.Domain)
		if err != nil || before != vm.ShutOff || action != vm.Started {
			t.Fatalf("Up: %v %v %v; want shut off, started", before, action, err)
		}
		err = c.WaitSSH(ctx, tv.Domain, tv.Addr, vm.SSHBanner(tv.Addr), time.Second, nil)
		var be *vm.BootTimeoutError
		if !errors.As(err, &be) || be.Timeout != time.Second || be.Addr != tv.Addr {
			t.Fatalf("WaitSSH with 1 s: %v, want *BootTimeoutError", err)
		}
		if err := tv.Destroy(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("start, wait, pause, resume, shut down", func(t *testing.T) {
		before, action, err := c.Up(ctx, tv.Domain)
		if err != nil || before != vm.ShutOff || action != vm.Started {
			t.Fatalf("Up: %v %v %v; want shut off, started", before, action, err)
		}
		start := time.Now()
		var said string
		if err := c.WaitSSH(ctx, tv.Domain, tv.Addr, vm.SSHBanner(tv.Addr), 5*time.Minute, func(s string) { said = s }); err != nil {
			t.Fatalf("WaitSSH: %v", err)
		}
		t.Logf("sshd answered %.1fs after the start", time.Since(start).Seconds())
		if !strings.Contains(said, tv.Addr) {
			t.Errorf("WaitSSH said %q, not naming %s", said, tv.Addr)
		}
		if before, action, err := c.Up(ctx, tv.Domain); err != nil || before != vm.Running || action != vm.None {
			t.Fatalf("Up of a running domain: %v %v %v", before, action, err)
		}
		if err := tv.Suspend(); err != nil {
			t.Fatal(err)
		}
		if before, action, err := c.Up(ctx, tv.Domain); err != nil || before != vm.Paused || action != vm.Resumed {
			t.Fatalf("Up of a paused domain: %v %v %v; want paused, resumed", before, action, err)
		}
		if st, err := c.State(ctx, tv.Domain); err != nil || st != vm.Running {
			t.Fatalf("after resume: %v %v", st, err)
		}
		start = time.Now()
		forced, err := c.Stop(ctx, tv.Domain, 2*time.Minute)
		if err != nil || forced {
			t.Fatalf("Stop: forced %v, %v; want a clean ACPI shutdown", forced, err)
		}
		t.Logf("ACPI shutdown took %.1fs", time.Since(start).Seconds())
		if st, err := c.State(ctx, tv.Domain); err != nil || st != vm.ShutOff {
			t.Fatalf("after Stop: %v %v", st, err)
		}
		if forced, err := c.Stop(ctx, tv.Domain, time.Second); err != nil || forced {
			t.Fatalf("Stop of a shut off domain: %v %v", forced, err)
		}
	})
}

// TestStartFails: libvirt's own reason when it cannot start a domain (here:
// its kernel is missing), on one line.
func TestStartFails(t *testing.T) {
	tv := testvm.Start(t, testvm.Options{Kernel: "/nonexistent/xvmtest-vmlinuz"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := vm.Connect(ctx, testvm.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before, action, err := c.Up(ctx, tv.Domain)
	var se *vm.StartError
	if !errors.As(err, &se) || before != vm.ShutOff || action != vm.Started || se.Action != "start" || se.Domain != tv.Domain {
		t.Fatalf("Up: %v %v %v; want *StartError for a start", before, action, err)
	}
	if !strings.Contains(se.Msg, "/nonexistent/xvmtest-vmlinuz") || strings.ContainsAny(se.Msg, "\n\r") {
		t.Errorf("libvirt's message: %q; want one line naming the missing kernel", se.Msg)
	}
	t.Logf("%v", err)
}

// TestConnectErrors: a socket where no daemon listens.
func TestConnectErrors(t *testing.T) {
	ctx := context.Background()
	_, err := vm.Connect(ctx, "qemu:///system?socket="+t.TempDir()+"/none")
	var nd *vm.NoDaemonError
	if !errors.As(err, &nd) {
		t.Fatalf("Connect to a missing socket: %v, want *NoDaemonError", err)
	}
}

func TestMain(m *testing.M) {
	// The no-permission test runs this binary as another user to connect.
	if uri := os.Getenv("XVMVIEW_TEST_VM_CONNECT"); uri != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := vm.Connect(ctx, uri)
		if err == nil {
			c.Close()
		}
		fmt.Printf("%T: %v", err, err)
		return
	}
	os.Exit(m.Run())
}

// TestNoPermission: a user whom libvirtd refuses (here: nobody, whom
// polkit cannot vouch for) gets *PermissionError, with libvirt's reason.
func TestNoPermission(t *testing.T) {
	if os.Geteuid() != 0 {
		testguest.Missing(t, "root", "run the VM tests as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vm.Connect(ctx, testvm.URI)
	if err != nil {
		testguest.Missing(t, "a running libvirtd ("+err.Error()+")", "install libvirt-daemon-system and start it: scripts/start-libvirtd.sh")
		return
	}
	c.Close()
	// nobody must be able to run the test binary: a copy in a 0755 dir.
	dir, err := os.MkdirTemp("", "xvmview-vm-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "vm.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"XVMVIEW_TEST_VM_CONNECT=" + testvm.URI, "PATH=/usr/bin:/bin"}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.HasPrefix(string(out), "*vm.PermissionError: no permission to use libvirt at /run/libvirt/libvirt-sock (qemu:///system): ") {
		t.Errorf("connect as nobody: %s", out)
	}
	t.Logf("%s", out)
}
