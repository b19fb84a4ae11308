package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"

	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/testvm"
	"github.com/xvmview/xvmview/internal/vm"
)

// vmTarget is what naming a running VM may add to a launch: one libvirt
// state query.
const vmTarget = 20 * time.Millisecond

// vmBoot starts the test domain and returns the time from its start to its
// sshd's banner: the VM's own boot time.
func vmBoot(ctx context.Context, tv *testvm.VM) (time.Duration, error) {
	if err := tv.Destroy(); err != nil {
		return 0, err
	}
	if err := tv.CheckState(libvirt.DomainShutoff); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := tv.Start(); err != nil {
		return 0, err
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := vm.SSHBanner(tv.Addr)(pctx)
		cancel()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > 5*time.Minute {
			return 0, fmt.Errorf("test domain %s: no sshd after 5 min: %v", tv.Domain, err)
		}
		if !pause(ctx, 100*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// newTestVM builds (or finds) the test VM image and defines a domain, then
// boots it once (a warm-up that also fills the page cache).
func newTestVM(ctx context.Context, stderr io.Writer) (*testvm.VM, error) {
	img, err := testvm.BuildImage(ctx, func(f string, a ...any) { fmt.Fprintf(stderr, "startup: "+f+"\n", a...) })
	if err != nil {
		return nil, err
	}
	tv, err := testvm.New(ctx, img, testvm.Options{})
	if err != nil {
		return nil, err
	}
	d, err := vmBoot(ctx, tv)
	if err != nil {
		tv.Close()
		return nil, err
	}
	fmt.Fprintf(stderr, "startup: test domain %s booted (warm-up) in %.1fs\n", tv.Domain, d.Seconds())
	return tv, nil
}

// vmLauncher is xvmview with a profile whose vm key names the running test
// domain, against the same test guest as the others: only the VM part
// differs.
func vmLauncher(cfg config, g *testguest.Guest, x *testguest.Xvfb, work string, tv *testvm.VM) (*xvmview, error) {
	return newXvmviewWith(cfg, g, x, filepath.Join(work, "xvmview-vm"), "ssh", xvmviewSetup{
		label: "xvmview (ssh+vm)",
		extra: fmt.Sprintf("vm = %q\nvm_uri = %q\n", tv.Domain, testvm.URI),
	})
}

// vmOff measures runs launches of xeyes (no window manager) on the test
// VM's own guest with the VM shut off before each, next to the VM's own
// boot time (start to sshd banner) measured just before each launch, and
// prints both. The profile shuts the VM down at the end of each session.
func vmOff(ctx context.Context, cfg config, g *testguest.Guest, x *testguest.Xvfb, work string, tv *testvm.VM, runs int, stdout, stderr io.Writer) error {
	c := cfg
	c.app = apps["xeyes"]
	c.timeout = 5 * time.Minute
	v, err := newXvmviewWith(c, g, x, filepath.Join(work, "xvmview-vm-off"), "ssh", xvmviewSetup{
		label:  "xvmview (vm off)",
		stanza: tv.HostStanza("bench-guest"),
		noWM:   true,
		// The teardown shuts the VM down (up to 60 s, then forced).
		exitWait: 100 * time.Second,
		extra:    fmt.Sprintf("vm = %q\nvm_uri = %q\nshutdown_on_exit = true\nboot_timeout = 300\n", tv.Domain, testvm.URI),
	})
	if err != nil {
		return err
	}
	var boots, launches []time.Duration
	var problems []error
	var lastOut string
	for r := 0; r < runs && ctx.Err() == nil; r++ {
		b, err := vmBoot(ctx, tv)
		if err != nil {
			return err
		}
		boots = append(boots, b)
		if err := tv.Destroy(); err != nil {
			return err
		}
		if err := tv.CheckState(libvirt.DomainShutoff); err != nil {
			return err
		}
		d, out, err := v.once(ctx, true)
		var le *leftoverError
		switch {
		case d > 0 && errors.As(err, &le):
			// Measured; the teardown on the slow guest had trouble.
			fmt.Fprintf(stderr, "startup: xvmview with the VM off: %s, but %v\n%s\n", ms(d), err, indent(out))
			problems = append(problems, err)
		case err != nil:
			fmt.Fprintf(stderr, "startup: xvmview with the VM off: FAILED: %v\n%s\n", err, indent(out))
			return err
		}
		launches = append(launches, d)
		lastOut = out
		fmt.Fprintf(stderr, "startup: run %d/%d: VM boot to sshd %s, xvmview launch to first window with the VM off %s\n", r+1, runs, ms(b), ms(d))
		if err := tv.CheckState(libvirt.DomainShutoff); err != nil {
			return fmt.Errorf("xvmview did not shut the VM down at the session's end: %w", err)
		}
	}
	if len(launches) == 0 {
		return ctx.Err()
	}
	bm, bl, bh := stats(boots)
	lm, ll, lh := stats(launches)
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "with the VM off (libvirt QEMU/TCG test domain, xeyes without a window manager, %d runs):\n", len(launches))
	fmt.Fprintf(stdout, "%-34s %8s  %8s  %8s\n", "", "median", "min", "max")
	fmt.Fprintf(stdout, "%-34s %8s  %8s  %8s\n", "VM start to its sshd's banner", ms(bm), ms(bl), ms(bh))
	fmt.Fprintf(stdout, "%-34s %8s  %8s  %8s\n", "xvmview launch to first window", ms(lm), ms(ll), ms(lh))
	fmt.Fprintf(stdout, "xvmview adds %s to the VM's boot (median against median)\n", ms(lm-bm))
	fmt.Fprintln(stdout, "the last of these launches with --verbose (times since xvmview started):")
	for _, p := range phaseLines(lastOut) {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	return errors.Join(problems...)
}

// vmVerdict prints what naming a running VM added to the launch: the
// difference of the medians, and the VM step itself in the traced run
// (from the runtime directory's phase to "domain D is running"), which
// the load's noise does not blur.
func vmVerdict(stdout io.Writer, withVM, without time.Duration, phases []string) {
	d := withVM - without
	verdict := "met"
	if d > vmTarget {
		verdict = "NOT met"
	}
	fmt.Fprintf(stdout, "a running VM named in the profile adds %s to the median (target <= %s: %s)", ms(d), ms(vmTarget), verdict)
	if step, ok := vmStep(phases); ok {
		fmt.Fprintf(stdout, "; the VM step itself (libvirt connect, lock, session records, state query) took %.1f ms in the traced run", float64(step.Microseconds())/1000)
	}
	fmt.Fprintln(stdout)
}

var phaseTimeRE = regexp.MustCompile(`^xvmview:\s+(\d+\.\d+)s (.*)$`)

// vmStep is the time from the "runtime directory" phase to the "domain D
// is running" phase in an xvmview --verbose run's phases.
func vmStep(phases []string) (time.Duration, bool) {
	var from, to float64 = -1, -1
	for _, p := range phases {
		m := phaseTimeRE.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		t, _ := strconv.ParseFloat(m[1], 64)
		switch {
		case strings.HasPrefix(m[2], "runtime directory"):
			from = t
		case strings.HasPrefix(m[2], "domain ") && strings.HasSuffix(m[2], " is running"):
			to = t
		}
	}
	if from < 0 || to < 0 {
		return 0, false
	}
	return time.Duration((to - from) * float64(time.Second)), true
}
