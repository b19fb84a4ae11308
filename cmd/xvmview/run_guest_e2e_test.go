package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
)

// TestRunStaleGuestEntryDoesNotShadow: sshd's X11 forwarding leaves entries
// such as "GUESTHOST/unix:10" in the guest's ~/.Xauthority and never removes
// them. libxcb looks localhost:D up as family Local with the guest's host
// name, and xauth keeps specific entries before Wild ones, so such a leftover
// entry for D must not shadow the session's Wild entry: the app must connect.
// Likewise a leftover "HOSTADDR:N" (the old script's kind) over tcp.
func TestRunStaleGuestEntryDoesNotShadow(t *testing.T) {
	w := newWorld(t, true)
	for _, transport := range []string{"ssh", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			w.profile("shadow", fmt.Sprintf(`host = "e2eguest"
command = ["xdpyinfo"]
transport = %q
`, transport))
			// Leftovers with an old cookie, as sshd or an earlier script left them,
			// for every display the session may get.
			var script strings.Builder
			script.WriteString("set -e\n")
			for d := 0; d <= 20; d++ {
				fmt.Fprintf(&script, "xauth -q add \"$(uname -n)/unix:%d\" MIT-MAGIC-COOKIE-1 %s\n", d, strings.Repeat("ab", 16))
				fmt.Fprintf(&script, "xauth -q add %s:%d MIT-MAGIC-COOKIE-1 %s\n", w.g.HostAddr, d, strings.Repeat("ab", 16))
			}
			if out, err := w.guestRun(script.String(), ""); err != nil {
				t.Fatalf("seed guest Xauthority: %v: %s", err, out)
			}
			l := w.start("run", "shadow")
			if st := l.wait(t); st != 0 {
				t.Errorf("exit status %d, want xdpyinfo's 0 (refused by a leftover entry?); stderr:\n%s", st, l.stderr.String())
			}
			_, _ = w.guestRun(`rm -f "$HOME/.Xauthority"`, "")
		})
	}
}

// TestRunLoginShells: sshd hands xvmview's commands to the guest user's
// login shell; with each of them (fish's single quotes differ from POSIX
// ones, csh and tcsh parse nothing like sh) the launch, the quoting and the
// teardown work the same, and the app gets a nasty argument byte for byte.
func TestRunLoginShells(t *testing.T) {
	shells := []string{"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh"}
	requireTools(t, shells...)
	w := newWorld(t, true)
	const arg = "it's a \\ $(x) `y` \"q\" \\' !! (){} %s\n"
	w.profile("shells", fmt.Sprintf(`host = "e2eguest"
command = ["sh", "-c", %q, "sh", %q]
window_manager = ["twm"]
`, `printf '%s' "$1" > "$HOME/arg"; exit 3`, arg))
	for _, sh := range shells {
		t.Run(sh, func(t *testing.T) {
			p, err := exec.LookPath(sh)
			must(t, err)
			if out, err := exec.Command("usermod", "-s", p, w.g.User).CombinedOutput(); err != nil {
				t.Fatalf("usermod: %v: %s", err, out)
			}
			l := w.start("run", "shells")
			if st := l.wait(t); st != 3 {
				t.Errorf("exit status %d, want 3; stderr:\n%s", st, l.stderr.String())
			}
			got, err := w.g.ReadHomeFile("arg")
			if err != nil || string(got) != arg {
				t.Errorf("the guest app got %q (%v), want %q", got, err, arg)
			}
			w.checkGone(session.State{Display: -1, XephyrPID: -1, GuestDisplay: ":10"})
			_, _ = w.guestRun(`rm -f "$HOME/arg"`, "")
		})
	}
}

// TestRunNoXauthOnGuest: a guest without xauth gets one clear error with
// the package to install, and nothing is left behind.
func TestRunNoXauthOnGuest(t *testing.T) {
	w := newWorld(t, true)
	// The guest user's login shell sees a PATH with everything but xauth.
	bin := t.TempDir()
	must(t, os.Chmod(bin, 0o755))
	for _, tool := range []string{"sh", "env", "sleep", "kill", "cat", "twm", "xlogo"} {
		p, err := exec.LookPath(tool)
		must(t, err)
		must(t, os.Symlink(p, filepath.Join(bin, tool)))
	}
	shell := filepath.Join(bin, "login-shell")
	must(t, os.WriteFile(shell, []byte("#!/bin/sh\nPATH="+bin+"\nexport PATH\nexec /bin/sh \"$@\"\n"), 0o755))
	testguest.Reachable(t, bin)
	if out, err := exec.Command("usermod", "-s", shell, w.g.User).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v: %s", err, out)
	}
	w.remoteProfile("e2e", "ssh")
	l := w.start("run", "e2e")
	if st := l.wait(t); st != 1 {
		t.Errorf("exit status %d, want 1", st)
	}
	for _, want := range []string{"xvmview: error: no xauth on guest", "xvmview: hint: install xauth on the guest"} {
		if !strings.Contains(l.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, l.stderr.String())
		}
	}
	w.checkGone(session.State{Display: -1, XephyrPID: -1, GuestDisplay: ":10"})
}

// TestRunEndsDaemons: a guest program that leaves its process group (setsid,
// as daemons and terminal emulators' shells do) still ends with the session,
// whether the launcher is stopped or the app exits; and it does not keep the
// session open by holding its output.
func TestRunEndsDaemons(t *testing.T) {
	w := newWorld(t, true)
	w.profile("daemon", fmt.Sprintf(`host = "e2eguest"
command = ["sh", "-c", %q]
window_manager = ["twm"]
`, "setsid sh -c 'trap \"\" TERM; exec sleep 1234' &\n"+appScript))
	for _, end := range []string{"SIGTERM", "app exit"} {
		t.Run(end, func(t *testing.T) {
			l := w.start("run", "daemon")
			s, _ := w.session(l)
			daemonRuns := func() bool {
				procs, err := w.g.Processes()
				must(t, err)
				return slices.ContainsFunc(procs, func(p testguest.Process) bool { return slices.Equal(p.Cmdline, []string{"sleep", "1234"}) })
			}
			for deadline := time.Now().Add(10 * time.Second); !daemonRuns(); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the daemon does not run on the guest")
				}
			}
			want := 3
			if end == "SIGTERM" {
				must(t, l.cmd.Process.Signal(syscall.SIGTERM))
				want = 128 + int(syscall.SIGTERM)
			} else if out, err := w.guestRun(`touch "$HOME/stop"`, ""); err != nil {
				t.Fatalf("touch stop: %v: %s", err, out)
			}
			if st := l.wait(t); st != want {
				t.Errorf("exit status %d, want %d; stderr:\n%s", st, want, l.stderr.String())
			}
			w.checkGone(s)
			if out, err := w.guestRun(`rm -f "$HOME/stop"`, ""); err != nil {
				t.Fatalf("rm stop: %v: %s", err, out)
			}
		})
	}
}

// TestRunKeeperKilled: when the guest-side keeper of the session's
// Xauthority dies mid-session (SIGTERM: its trap removes the file; SIGKILL:
// the file stays without its keeper), the session ends at once with an
// error that says so, instead of running on with new X connections
// refused; the teardown leaves nothing behind on host or guest, the
// directory of a SIGKILLed keeper included.
func TestRunKeeperKilled(t *testing.T) {
	w := newWorld(t, true)
	w.profile("keeper", fmt.Sprintf(`host = "e2eguest"
command = ["sh", "-c", %q]
window_manager = ["twm"]
`, appScript))
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			l := w.start("run", "keeper")
			s, _ := w.session(l)
			procs, err := w.g.Processes()
			must(t, err)
			keeper := -1
			for _, p := range procs {
				if strings.Contains(strings.Join(p.Cmdline, " "), "nmerge") {
					keeper = p.PID
				}
			}
			if keeper < 0 {
				t.Fatalf("no keeper among the guest's processes %v", procs)
			}
			must(t, syscall.Kill(keeper, sig))
			if st := l.wait(t); st != 1 {
				t.Errorf("exit status %d, want 1; stderr:\n%s", st, l.stderr.String())
			}
			for _, want := range []string{"xvmview: error: the guest", "lost the session's Xauthority", "xvmview: hint: something on the guest ended xvmview's keeper"} {
				if !strings.Contains(l.stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, l.stderr.String())
				}
			}
			w.checkGone(s)
		})
	}
}
