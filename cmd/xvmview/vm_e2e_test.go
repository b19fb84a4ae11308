package main

import (
	"context"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"

	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/testvm"
	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// vmBootWait bounds a test's wait for a TCG guest to boot: about 15-20 s
// on an idle 2-core machine, up to a minute under load.
const vmBootWait = 5 * time.Minute

// vmAppScript is the VM guest's app: a red xlogo at +100+100, until the
// file /tmp/stop-$1 appears; then exit 3.
const vmAppScript = `xlogo -bg red -fg red -geometry 185x110+100+100 &
while [ ! -e "/tmp/stop-$1" ]; do sleep 0.2; done
exit 3`

// TestVMOnDemand is the menu click against a real VM: the domain is off,
// `xvmview run` starts it, waits for its sshd and shows the app; a second
// session uses the running (then paused) VM; the VM keeps running while
// one session is left and shuts down when the last one ends. Before that,
// the error cases (a boot that times out, an unknown domain), a VM that ran
// before xvmview (waited for while it boots, left running after), vm stop
// and check.
func TestVMOnDemand(t *testing.T) {
	tv := testvm.Start(t, testvm.Options{})
	w := buildWorld(t, nil, testguest.XvfbOptions{})
	must(t, os.WriteFile(filepath.Join(w.home, ".ssh", "config"), []byte(tv.HostStanza("vmguest")), 0o600))
	vmProfile := func(name, domain, extra string) {
		w.profile(name, fmt.Sprintf(`host = "vmguest"
vm = %q
command = ["sh", "-c", %q, "sh"]
%s
`, domain, vmAppScript, extra))
	}
	vmProfile("vmapp", tv.Domain, "shutdown_on_exit = true\nboot_timeout = 300\nscreen = \"800x600\"")

	t.Run("unknown domain", func(t *testing.T) {
		vmProfile("vmnone", "xvmtest-no-such-domain", "")
		code, _, stderr := w.runStdin("", "run", "vmnone")
		if code != 1 || !strings.Contains(stderr, `has no domain "xvmtest-no-such-domain"`) || !strings.Contains(stderr, "xvmview: hint: its domains: ") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})

	t.Run("boot timeout", func(t *testing.T) {
		vmProfile("vmslow", tv.Domain, "boot_timeout = 2")
		start := time.Now()
		code, _, stderr := w.runStdin("", "run", "vmslow")
		if code != 1 || !strings.Contains(stderr, "did not answer SSH at "+tv.Addr+" within 2s") || !strings.Contains(stderr, "boot_timeout") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
		if !strings.Contains(stderr, "started domain "+tv.Domain+" (it was shut off)") {
			t.Errorf("the launch does not say that it started the domain:\n%s", stderr)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("a 2 s boot timeout took %s", d)
		}
		// shutdown_on_exit is off: the VM boots on.
		if st, err := tv.State(); err != nil || st != libvirt.DomainRunning {
			t.Errorf("domain state %d, %v; want running", st, err)
		}
	})
	if t.Failed() {
		return
	}

	// The VM runs now, still booting, and no session has it on record as
	// started by xvmview: to the next launch it ran before.
	t.Run("a VM that ran before is waited for and left running", func(t *testing.T) {
		vmProfile("vmkeep", tv.Domain, "shutdown_on_exit = true\nboot_timeout = 300\nscreen = \"800x600\"")
		p := w.start("run", "vmkeep", "--", "p")
		sp, _ := w.vmSession(p)
		if sp.VM == nil || sp.VM.Started {
			t.Errorf("session state's VM: %+v; want not started by xvmview", sp.VM)
		}
		if !strings.Contains(p.stderr.String(), "is running, but its sshd does not answer yet") {
			t.Errorf("the launch does not say it waits for the booting VM:\n%s", p.stderr.String())
		}
		w.vmGuestRun(tv, "touch /tmp/stop-p")
		if code := p.wait(t); code != 3 {
			t.Errorf("exit %d, want the app's 3", code)
		}
		if st, err := tv.State(); err != nil || st != libvirt.DomainRunning {
			t.Errorf("after the session: domain state %d, %v; want running (shutdown_on_exit = true spares a VM xvmview did not start)", st, err)
		}
		if strings.Contains(p.stderr.String(), "shutting down domain") {
			t.Errorf("the session shut down a VM it did not start:\n%s", p.stderr.String())
		}
		w.checkGone(sp)
	})

	t.Run("vm stop", func(t *testing.T) {
		code, _, stderr := w.runStdin("", "vm", "stop", "vmkeep", "--grace", "1s")
		if code != 0 || !strings.Contains(stderr, "xvmview: domain "+tv.Domain) {
			t.Errorf("vm stop: exit %d, stderr:\n%s", code, stderr)
		}
		if st, err := tv.State(); err != nil || st != libvirt.DomainShutoff {
			t.Errorf("after vm stop: domain state %d, %v; want shut off", st, err)
		}
	})
	if st, err := tv.State(); err != nil || st != libvirt.DomainShutoff {
		must(t, tv.Destroy())
		must(t, tv.CheckState(libvirt.DomainShutoff))
	}

	t.Run("check with the VM off", func(t *testing.T) {
		code, out, _ := w.runStdin("", "check", "vmapp")
		for _, want := range []string{
			"ok   libvirt: qemu:///system answers at /run/libvirt/libvirt-sock",
			"ok   VM: domain " + tv.Domain + " is shut off ('xvmview run' starts it)",
			"skip guest reachable: domain " + tv.Domain + " is shut off",
			"skip login: domain " + tv.Domain + " is shut off",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("check output lacks %q:\n%s", want, out)
			}
		}
		if code != 0 {
			t.Errorf("check: exit %d, want 0 (nothing failed):\n%s", code, out)
		}
	})
	if t.Failed() {
		return
	}

	png := filepath.Join(w.home, "a.png")
	start := time.Now()
	a := w.start("run", "vmapp", "--screenshot", png, "--", "a")
	sa, cookie := w.vmSession(a)
	t.Logf("launch to running app with the VM off: %.1fs", time.Since(start).Seconds())
	if sa.VM == nil || !sa.VM.Started || !sa.VM.Ready || sa.VM.Domain != tv.Domain {
		t.Errorf("session state's VM: %+v; want started by xvmview and ready", sa.VM)
	}
	for _, want := range []string{"started domain " + tv.Domain + " (it was shut off)", "waiting up to 5m0s for the sshd of domain " + tv.Domain, "is up: its sshd answered after"} {
		if !strings.Contains(a.stderr.String(), want) {
			t.Errorf("launcher's stderr lacks %q:\n%s", want, a.stderr.String())
		}
	}
	t.Run("xlogo drawn in the nested display", func(t *testing.T) { checkRedWindow(t, sa.Display, cookie) })

	// A second session finds the VM paused: it resumes it and uses it.
	must(t, tv.Suspend())
	b := w.start("run", "vmapp", "--", "b")
	sb, _ := w.vmSession(b)
	if sb.VM == nil || !sb.VM.Started {
		t.Errorf("second session's VM: %+v; want Started inherited from the first", sb.VM)
	}
	if !strings.Contains(b.stderr.String(), "resumed domain "+tv.Domain+" (it was paused)") {
		t.Errorf("second launcher does not say it resumed the domain:\n%s", b.stderr.String())
	}

	t.Run("ps shows the sessions' VM", func(t *testing.T) {
		code, out, _ := w.runStdin("", "ps")
		if code != 0 || strings.Count(out, tv.Domain+" (running)") != 2 || !strings.Contains(out, "VM") {
			t.Errorf("ps: exit %d:\n%s", code, out)
		}
	})
	t.Run("vm stop refuses while sessions use the VM", func(t *testing.T) {
		code, _, stderr := w.runStdin("", "vm", "stop", "vmapp")
		if code != 1 || !strings.Contains(stderr, "is in use by 2 running session(s)") || !strings.Contains(stderr, sa.ID) {
			t.Errorf("vm stop: exit %d, stderr:\n%s", code, stderr)
		}
		if st, err := tv.State(); err != nil || st != libvirt.DomainRunning {
			t.Errorf("domain state %d, %v; want running", st, err)
		}
	})
	t.Run("check with the VM running", func(t *testing.T) {
		code, out, _ := w.runStdin("", "check", "vmapp")
		if code != 0 || !strings.Contains(out, "ok   VM: domain "+tv.Domain+" is running") || !strings.Contains(out, "ok   login:") {
			t.Errorf("check: exit %d:\n%s", code, out)
		}
	})

	// The first session ends: the VM runs on for the second.
	w.vmGuestRun(tv, "touch /tmp/stop-a")
	if code := a.wait(t); code != 3 {
		t.Errorf("first session: exit %d, want the app's 3", code)
	}
	if st, err := tv.State(); err != nil || st != libvirt.DomainRunning {
		t.Errorf("after the first of two sessions ended: domain state %d, %v; want running", st, err)
	}
	if strings.Contains(a.stderr.String(), "shutting down domain") {
		t.Errorf("the first session shut the VM down while the second used it:\n%s", a.stderr.String())
	}

	// The last session ends: the VM is shut down before its launcher exits.
	// (Not by `xvmview stop`: a TCG guest on a loaded machine may take
	// longer than the teardown's grace to end a signalled program.)
	w.vmGuestRun(tv, "touch /tmp/stop-b")
	if code := b.wait(t); code != 3 {
		t.Errorf("second session: exit %d, want the app's 3", code)
	}
	if st, err := tv.State(); err != nil || st != libvirt.DomainShutoff {
		t.Errorf("after the last session ended: domain state %d, %v; want shut off", st, err)
	}
	if !strings.Contains(b.stderr.String(), "shutting down domain "+tv.Domain) {
		t.Errorf("the last session does not say it shut the VM down:\n%s", b.stderr.String())
	}
	code, _, stderr := w.runStdin("", "vm", "stop", "vmapp")
	if code != 0 || !strings.Contains(stderr, "was shut off already") {
		t.Errorf("vm stop of a shut off VM: exit %d, stderr:\n%s", code, stderr)
	}
	w.checkGone(sa)
	w.checkGone(sb)
}

// vmSession is world.session with a wait long enough for a VM to boot.
func (w *world) vmSession(l *launcher) (session.State, xauth.Cookie) {
	w.t.Helper()
	return w.runningSession(l, vmBootWait)
}

// vmGuestRun runs a shell command on the VM guest with ssh(1) and the
// user's ssh_config.
func (w *world) vmGuestRun(tv *testvm.VM, script string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-F", filepath.Join(w.home, ".ssh", "config"), "vmguest", script).CombinedOutput()
	if err != nil {
		w.t.Fatalf("ssh vmguest %s: %v\n%s", script, err, out)
	}
}

// checkRedWindow waits until the red 185x110 window at +100+100 (no window
// manager) shows on the nested display.
func checkRedWindow(t *testing.T, display int, cookie xauth.Cookie) {
	t.Helper()
	waitNested(t, display, cookie, 60*time.Second, "no red window at +100+100 on the nested display", func(img *image.RGBA) bool {
		red := func(x, y int) bool { return isRed(img, x, y) }
		return red(105, 105) && red(190, 150) && red(280, 205) && !red(95, 95) && !red(300, 160) && !red(190, 220)
	})
}

// waitNested polls screenshots of the nested display :display until ok
// accepts one, failing with msg (and the last image saved) after timeout.
func waitNested(t *testing.T, display int, cookie xauth.Cookie, timeout time.Duration, msg string, ok func(*image.RGBA) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := xephyr.Dial(ctx, display, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	for {
		img, err := xephyr.Screenshot(conn, 0, 0, 800, 600)
		if err != nil {
			t.Fatal(err)
		}
		if ok(img) {
			return
		}
		if time.Now().After(deadline) {
			_ = writeTestPNG(t, img)
			t.Fatal(msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// isRed reports whether the pixel at (x, y) is the test apps' red.
func isRed(img *image.RGBA, x, y int) bool {
	c := img.RGBAAt(x, y)
	return c.R > 200 && c.G < 50 && c.B < 50
}
