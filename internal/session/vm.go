package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/vm"
)

// VM is the part of a plan that concerns the libvirt domain behind the
// guest (profile keys vm, vm_uri, shutdown_on_exit, boot_timeout).
type VM struct {
	URI         string
	Domain      string
	Shutdown    string        // profile.ShutdownNever, ShutdownStarted or ShutdownAlways
	BootTimeout time.Duration // the wait for its sshd after starting or resuming it
	// ShutdownGrace is how long a shutdown waits for the guest to power
	// off after the ACPI button before forcing it off.
	ShutdownGrace time.Duration
}

// DefaultShutdownGrace is VM.ShutdownGrace in a new plan.
const DefaultShutdownGrace = 60 * time.Second

// vmConnectTimeout bounds the connection to libvirt and each quick call.
const vmConnectTimeout = 10 * time.Second

// vmPlan is the VM of profile p, or nil.
func vmPlan(p profile.Profile) *VM {
	if p.VM.Domain == "" {
		return nil
	}
	return &VM{URI: p.VM.URI, Domain: p.VM.Domain, Shutdown: p.VM.Shutdown, BootTimeout: p.VM.BootTimeout, ShutdownGrace: DefaultShutdownGrace}
}

// describe prints the VM's line of --dry-run.
func (v *VM) describe(w io.Writer) {
	if v == nil {
		return
	}
	when := "never (shutdown_on_exit = false)"
	switch v.Shutdown {
	case profile.ShutdownStarted:
		when = "when the last session using it ends, if xvmview started it"
	case profile.ShutdownAlways:
		when = "when the last session using it ends"
	}
	fmt.Fprintf(w, "vm:       domain %s at %s: started if shut off, resumed if paused; then up to %s for its sshd\n", v.Domain, v.URI, v.BootTimeout)
	fmt.Fprintf(w, "vm stop:  %s: ACPI shutdown, forced off after %s\n", when, v.ShutdownGrace)
}

// VMUse is what a session records about the VM it uses, so that other
// launches can count the sessions that use a VM and know whether xvmview
// started it.
type VMUse struct {
	URI    string `json:"uri"`
	Domain string `json:"domain"`
	// Started: xvmview started this VM from shut off, for this session or
	// for a session that used it when this one began. Only such a VM is
	// shut down by shutdown_on_exit = true.
	Started  bool   `json:"started,omitempty"`
	Shutdown string `json:"shutdown,omitempty"` // the profile's shutdown_on_exit
	Ready    bool   `json:"ready,omitempty"`    // its sshd has answered
}

func (u *VMUse) same(o *VMUse) bool {
	return u != nil && o != nil && u.URI == o.URI && u.Domain == o.Domain
}

// vmLock serialises, across launchers, the decisions about one VM: start
// it and record its use; or count its users and shut it down. It is an
// flock on a file in the runtime root that exists only while it is held:
// unlock removes it, and a waiter that then gets the lock of the removed
// file opens the path again.
type vmLock struct {
	f    *os.File
	path string
}

// lockVM takes the VM's lock, waiting for it until ctx ends.
func lockVM(ctx context.Context, root, uri, domain string) (*vmLock, error) {
	if err := ensurePrivateDir(root); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(uri + "\x00" + domain))
	path := filepath.Join(root, ".vm-"+hex.EncodeToString(sum[:8])+".lock")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock for domain %s: %w", domain, err)
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				break
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil, fmt.Errorf("wait for another xvmview to finish with domain %s: %w", domain, ctx.Err())
			case <-tick.C:
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock for domain %s: %w", domain, err)
		}
		if sameFile(f, path) {
			return &vmLock{f, path}, nil
		}
		f.Close() // its holder removed it: take the new one
	}
}

// sameFile reports whether path still names the open file f.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

func (l *vmLock) unlock() {
	_ = os.Remove(l.path)
	l.f.Close()
}

// vmUsers returns the live sessions other than self that use the VM u.
func vmUsers(root, self string, u *VMUse) ([]State, error) {
	live, _, err := Live(root)
	if err != nil {
		return nil, err
	}
	var out []State
	for _, s := range live {
		if s.ID != self && u.same(s.VM) {
			out = append(out, s)
		}
	}
	return out, nil
}

// vmUp makes the plan's VM run before anything else of the launch: under
// the VM's lock it records the use in the session's state, then starts,
// resumes or wakes the domain as needed; outside the lock it waits for the
// guest's sshd when the domain was not running (or another launch is still
// waiting for it). The teardown step it pushes first releases the VM.
func (r *runner) vmUp(ctx context.Context) error {
	v := r.pl.VM
	cctx, cancel := context.WithTimeout(ctx, vmConnectTimeout)
	defer cancel()
	c, err := vm.Connect(cctx, v.URI)
	if err != nil {
		return err
	}
	defer c.Close()

	lock, err := lockVM(ctx, r.pl.RuntimeRoot, v.URI, v.Domain)
	if err != nil {
		return err
	}
	use := &VMUse{URI: v.URI, Domain: v.Domain, Shutdown: v.Shutdown}
	others, err := vmUsers(r.pl.RuntimeRoot, r.state.ID, use)
	if err != nil {
		lock.unlock()
		return err
	}
	booting := false
	for _, o := range others {
		use.Started = use.Started || o.VM.Started
		booting = booting || !o.VM.Ready
	}
	r.state.VM = use
	r.saveState()
	r.push("VM "+v.Domain, r.vmRelease)

	cctx, cancel = context.WithTimeout(ctx, vmConnectTimeout)
	defer cancel()
	before, action, err := c.Up(cctx, v.Domain)
	if action == vm.Started && err == nil {
		use.Started = true
	}
	use.Ready = action == vm.None && !booting
	r.saveState()
	lock.unlock()
	if err != nil {
		return err
	}
	if use.Ready {
		r.phase(fmt.Sprintf("domain %s is %s", v.Domain, before))
		return nil
	}
	if action != vm.None {
		r.notice("%s domain %s (it was %s)", action, v.Domain, before)
	}
	t := *r.pl.Guest
	probe := vm.SSHBanner(t.Addr())
	if t.ProxyCommand != "" || len(t.Jumps) > 0 {
		// Not reachable from here directly: a host key fetch goes the
		// same way as the login.
		probe = func(ctx context.Context) error { _, err := guest.FetchHostKey(ctx, t); return err }
	}
	start := time.Now()
	if err := c.WaitSSH(ctx, v.Domain, t.Addr(), probe, v.BootTimeout, func(msg string) { r.notice("%s", msg) }); err != nil {
		return err
	}
	use.Ready = true
	r.saveState()
	r.notice("domain %s is up: its sshd answered after %.1fs", v.Domain, time.Since(start).Seconds())
	return nil
}

// vmRelease is the teardown step of the VM: when no other live session uses
// it and the profile says so, it shuts the VM down (ACPI, then forced off
// after the grace), holding the VM's lock so that a launch starting
// meanwhile waits and then starts it again. The step has its own deadline:
// a shutdown takes longer than the others.
func (r *runner) vmRelease(ctx context.Context) error {
	v, use := r.pl.VM, r.state.VM
	if use == nil {
		return nil
	}
	shut := v.Shutdown == profile.ShutdownAlways || v.Shutdown == profile.ShutdownStarted && use.Started
	if !shut {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.ShutdownGrace+2*vmConnectTimeout)
	defer cancel()
	lock, err := lockVM(ctx, r.pl.RuntimeRoot, v.URI, v.Domain)
	if err != nil {
		return err
	}
	defer lock.unlock()
	others, err := vmUsers(r.pl.RuntimeRoot, r.state.ID, use)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		r.phase(fmt.Sprintf("domain %s left running: %d other session(s) use it", v.Domain, len(others)))
		return nil
	}
	c, err := vm.Connect(ctx, v.URI)
	if err != nil {
		return err
	}
	defer c.Close()
	r.notice("shutting down domain %s", v.Domain)
	start := time.Now()
	forced, err := c.Stop(ctx, v.Domain, v.ShutdownGrace)
	if err != nil {
		return err
	}
	if forced {
		r.notice("domain %s did not power off within %s of the ACPI shutdown; forced off", v.Domain, v.ShutdownGrace)
	} else {
		r.phase(fmt.Sprintf("domain %s shut off after %.1fs", v.Domain, time.Since(start).Seconds()))
	}
	r.state.VM = nil
	r.saveState()
	return nil
}

// The errors of the vm package that a launch returns and the CLI words for
// the user (aliases, as in errors.go).
type (
	VMNoDaemonError      = vm.NoDaemonError
	VMPermissionError    = vm.PermissionError
	VMConnectError       = vm.ConnectError
	VMUnknownDomainError = vm.UnknownDomainError
	VMStartError         = vm.StartError
	VMStateError         = vm.StateError
	VMBootTimeoutError   = vm.BootTimeoutError
	VMStoppedError       = vm.StoppedError
)
