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
	"strings"
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

// shutdownTime is how much longer than usual a teardown may take because
// it shuts the VM down: the grace and the connection (0 for none).
func (u *VMUse) shutdownTime() time.Duration {
	if u == nil || u.Shutdown == "" {
		return 0
	}
	return DefaultShutdownGrace + 2*vmConnectTimeout
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
	r.saveState()
	lock.unlock()
	if err != nil {
		return err
	}
	t := *r.pl.Guest
	probe := vm.SSHBanner(t.Addr())
	direct := t.ProxyCommand == "" && len(t.Jumps) == 0
	if !direct {
		// Not reachable from here directly: a host key fetch goes the
		// same way as the login.
		probe = func(ctx context.Context) error { _, err := guest.FetchHostKey(ctx, t); return err }
	}
	if action == vm.None && !booting {
		// Running, but perhaps still booting (started by hand, or by a
		// launch that gave up): one look at the sshd's banner, a
		// millisecond on a running guest, tells. Through a jump host that
		// look costs a login's worth: the login itself tells then.
		ready := !direct
		if direct {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			ready = probe(pctx) == nil
			cancel()
		}
		if ready {
			use.Ready = true
			r.saveState()
			r.phase(fmt.Sprintf("domain %s is %s", v.Domain, before))
			return nil
		}
		r.notice("domain %s is %s, but its sshd does not answer yet", v.Domain, before)
	}
	if action != vm.None {
		r.notice("%s domain %s (it was %s)", action, v.Domain, before)
	}
	r.phase(fmt.Sprintf("waiting for domain %s's sshd at %s", v.Domain, t.Addr()))
	start := time.Now()
	if err := c.WaitSSH(ctx, v.Domain, t.Addr(), probe, v.BootTimeout, func(msg string) { r.notice("%s", msg) }); err != nil {
		return err
	}
	use.Ready = true
	r.saveState()
	r.notice("domain %s is up: its sshd answered after %.1fs", v.Domain, time.Since(start).Seconds())
	r.phase(fmt.Sprintf("domain %s is up", v.Domain))
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

// skipNow is a check's way to say that it cannot be made now and is
// skipped, not failed (with the checks that need it): a guest whose VM is
// shut off does not answer, and `xvmview run` would start it.
type skipNow struct{ because string }

func (e *skipNow) Error() string { return e.because }

func hasVM(p profile.Profile) bool { return !p.Local() && p.VM.Domain != "" }

// checkLibvirt connects to the profile's libvirt daemon.
func checkLibvirt(ctx context.Context, c *checking) (string, error) {
	conn, err := vm.Connect(ctx, c.p.VM.URI)
	if err != nil {
		return "", err
	}
	c.vm = conn
	return fmt.Sprintf("%s answers at %s", c.p.VM.URI, conn.Socket), nil
}

// checkVMDomain finds the profile's domain and says what run will do with
// it. A domain that is not running is fine (run starts it), but the
// checks of the guest are then skipped.
func checkVMDomain(ctx context.Context, c *checking) (string, error) {
	st, err := c.vm.State(ctx, c.p.VM.Domain)
	if err != nil {
		return "", err
	}
	switch st {
	case vm.Running, vm.Blocked:
		return fmt.Sprintf("domain %s is %s", c.p.VM.Domain, st), nil
	case vm.ShutOff, vm.Paused, vm.Suspended, vm.ShuttingDown:
		c.vmDown = fmt.Sprintf("domain %s is %s ('xvmview run' starts it)", c.p.VM.Domain, st)
		return c.vmDown, nil
	}
	return "", &vm.StateError{URI: c.p.VM.URI, Domain: c.p.VM.Domain, State: st}
}

// VMKey names a VM: its libvirt connection and domain.
type VMKey struct{ URI, Domain string }

// Key is the VM the session uses.
func (u *VMUse) Key() VMKey { return VMKey{u.URI, u.Domain} }

// vmStateTimeout bounds each libvirt connection of VMStates.
const vmStateTimeout = 3 * time.Second

// VMStates returns the state of every VM the sessions use, as words:
// "running", "shut off", ..., "undefined" for a domain libvirt does not
// know (any more), or "unknown" with a short reason when libvirt did not
// say.
func VMStates(ctx context.Context, states []State) map[VMKey]string {
	out := map[VMKey]string{}
	conns := map[string]*vm.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, s := range states {
		if s.VM == nil {
			continue
		}
		k := s.VM.Key()
		if _, ok := out[k]; ok {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, vmStateTimeout)
		c, ok := conns[k.URI]
		var err error
		if !ok {
			if c, err = vm.Connect(sctx, k.URI); err == nil {
				conns[k.URI] = c
			}
		}
		if err == nil {
			var st vm.State
			if st, err = c.State(sctx, k.Domain); err == nil {
				out[k] = st.String()
			}
		}
		cancel()
		if err != nil {
			out[k] = unknownState(err)
		}
	}
	return out
}

// NoVMError means a profile names no VM.
type NoVMError struct{ Profile string }

func (e *NoVMError) Error() string {
	return fmt.Sprintf("profile %s names no VM (no vm key)", e.Profile)
}

// VMInUseError means running sessions use the VM that was to be stopped.
type VMInUseError struct {
	Domain   string
	Sessions []string // their IDs
}

func (e *VMInUseError) Error() string {
	return fmt.Sprintf("domain %s is in use by %d running session(s): %s", e.Domain, len(e.Sessions), strings.Join(e.Sessions, ", "))
}

// StopVM shuts down the VM of profile p by hand: the ACPI power button,
// then forced off after grace. It refuses while a running session uses the
// VM (*VMInUseError) and holds the VM's lock meanwhile, as a session's end
// does. It returns the state the VM was in and whether it was forced off.
//
// Errors: *NoVMError, *VMInUseError, the vm package's connection and
// domain errors.
func StopVM(ctx context.Context, root string, p profile.Profile, grace time.Duration) (was string, forced bool, err error) {
	v := vmPlan(p)
	if v == nil {
		return "", false, &NoVMError{Profile: p.Name}
	}
	lock, err := lockVM(ctx, root, v.URI, v.Domain)
	if err != nil {
		return "", false, err
	}
	defer lock.unlock()
	users, err := vmUsers(root, "", &VMUse{URI: v.URI, Domain: v.Domain})
	if err != nil {
		return "", false, err
	}
	if len(users) > 0 {
		e := &VMInUseError{Domain: v.Domain}
		for _, u := range users {
			e.Sessions = append(e.Sessions, u.ID)
		}
		return "", false, e
	}
	cctx, cancel := context.WithTimeout(ctx, vmConnectTimeout)
	defer cancel()
	c, err := vm.Connect(cctx, v.URI)
	if err != nil {
		return "", false, err
	}
	defer c.Close()
	st, err := c.State(cctx, v.Domain)
	if err != nil {
		return "", false, err
	}
	forced, err = c.Stop(ctx, v.Domain, grace)
	return st.String(), forced, err
}

// unknownState words why VMStates has no state, briefly: it fills a column.
func unknownState(err error) string {
	var (
		nd *vm.NoDaemonError
		pe *vm.PermissionError
		ud *vm.UnknownDomainError
	)
	switch {
	case errors.As(err, &ud):
		return "undefined"
	case errors.As(err, &nd):
		return "unknown (no libvirt daemon)"
	case errors.As(err, &pe):
		return "unknown (no permission)"
	case errors.Is(err, context.DeadlineExceeded):
		return "unknown (libvirt timed out)"
	}
	return "unknown"
}
