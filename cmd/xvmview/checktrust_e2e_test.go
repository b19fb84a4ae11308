package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckAndTrust: check is all green against the test guest, names a
// missing command and an unknown host key; trust adds the key only after
// "yes", in a form that xvmview and OpenSSH both accept, and refuses a
// changed one.
func TestCheckAndTrust(t *testing.T) {
	w := newWorld(t, true)
	w.remoteProfile("e2e", "ssh")
	w.remoteProfile("e2e-tcp", "tcp")
	w.profile("e2e-missing", `host = "e2eguest"
command = ["nosuchapp-xvmview"]
window_manager = ["twm"]
`)

	t.Run("all green", func(t *testing.T) {
		code, out, _ := w.runStdin("", "check", "e2e")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		wantAll(t, "stdout", out, "ok   Xephyr: ", "ok   host display: ", "ok   profile: e2e", "ok   guest reachable: e2eguest at "+w.g.Addr+":22",
			"ok   host key: ssh-ed25519 "+w.g.HostKeyFingerprint+" is known", "ok   login: as "+w.g.User,
			"ok   xauth on guest: /", "ok   command on guest: /", "ok   window manager on guest: /",
			"ok   port forwarding: the guest's sshd allows remote forwarding", "all ")
		if strings.Contains(out, "FAIL") || strings.Contains(out, "skip") {
			t.Errorf("check is not all green:\n%s", out)
		}
	})

	t.Run("missing command", func(t *testing.T) {
		code, out, errOut := w.runStdin("", "check", "e2e-missing")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantAll(t, "stdout", out, "ok   login: ",
			"FAIL command on guest: nosuchapp-xvmview not found in the guest's PATH\n     hint: install nosuchapp-xvmview on the guest",
			"ok   window manager on guest: /")
		wantAll(t, "stderr", errOut, "xvmview: error: 1 of ")
	})

	// From here on the user's known_hosts is a file in a directory that does
	// not exist yet.
	khDir := filepath.Join(w.home, ".ssh", "known")
	kh := filepath.Join(khDir, "hosts")
	w.sshConfig(kh)

	t.Run("unknown host key", func(t *testing.T) {
		code, out, _ := w.runStdin("", "check", "e2e")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantAll(t, "stdout", out, "ok   guest reachable: ",
			"FAIL host key: unknown: ssh-ed25519 "+w.g.HostKeyFingerprint+" is not in "+kh,
			"     hint: compare the fingerprint with the guest's own (on its console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then accept it with `xvmview trust e2e`",
			"skip login: the host key is not trusted", "skip command on guest: ")
	})

	t.Run("trust answered no", func(t *testing.T) {
		for _, answer := range []string{"no\n", "YES\n", "yes please\n", "", " yes\n"} {
			code, out, errOut := w.runStdin(answer, "trust", "e2e")
			if code != 1 {
				t.Errorf("answer %q: exit %d, want 1", answer, code)
			}
			wantAll(t, "stdout", out, "ssh-ed25519 "+w.g.HostKeyFingerprint, "Add this key to "+kh+"? Type yes to continue: ")
			wantAll(t, "stderr", errOut, "host key not added", "nothing was written")
			if _, err := os.Stat(khDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("answer %q: %s exists (err %v)", answer, khDir, err)
			}
		}
	})

	t.Run("trust answered yes", func(t *testing.T) {
		code, out, _ := w.runStdin("yes\n", "trust", "e2e")
		if code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
		wantAll(t, "stdout", out, "Added the ssh-ed25519 key of "+w.g.Addr+" to "+kh)
		for p, want := range map[string]os.FileMode{khDir: 0o700, kh: 0o600} {
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v (err %v), want mode %04o", p, fi.Mode(), err, want)
			}
		}
		b, err := os.ReadFile(kh)
		must(t, err)
		if n := strings.Count(string(b), "\n"); n != 1 || !strings.Contains(string(b), " ssh-ed25519 ") {
			t.Errorf("known_hosts holds %d lines, want one ssh-ed25519 line:\n%s", n, b)
		}

		// Again: nothing to do, nothing written.
		code, out, _ = w.runStdin("", "trust", "e2e")
		if code != 0 || !strings.Contains(out, "already known") {
			t.Errorf("second trust: exit %d, stdout:\n%s", code, out)
		}
		if b2, _ := os.ReadFile(kh); !bytes.Equal(b, b2) {
			t.Errorf("second trust changed known_hosts:\n%s", b2)
		}
	})

	t.Run("check sees the key", func(t *testing.T) {
		code, out, _ := w.runStdin("", "check", "e2e")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		wantAll(t, "stdout", out, "ok   host key: ssh-ed25519 "+w.g.HostKeyFingerprint+" is known")
	})

	t.Run("OpenSSH accepts the line", func(t *testing.T) {
		requireTools(t, "ssh")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ssh", "-F", filepath.Join(w.home, ".ssh", "config"),
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "GlobalKnownHostsFile=/dev/null",
			"e2eguest", "true")
		cmd.Env = []string{"HOME=" + w.home, "PATH=" + os.Getenv("PATH")}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("ssh with the known_hosts trust wrote: %v\n%s", err, out)
		}
	})

	t.Run("run works after trust", func(t *testing.T) {
		l := w.start("run", "e2e-tcp")
		s, _ := w.session(l)
		if out, err := w.guestRun(`touch "$HOME/stop"`, ""); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if st := l.wait(t); st != 3 {
			t.Errorf("exit status %d, want the app's 3", st)
		}
		_, _ = w.guestRun(`rm -f "$HOME/stop"`, "")
		w.checkGone(s)
	})

	t.Run("changed key refused", func(t *testing.T) {
		wrong := filepath.Join(w.home, ".ssh", "known_hosts_wrong")
		must(t, w.g.WrongKnownHosts(wrong))
		before, err := os.ReadFile(wrong)
		must(t, err)
		w.sshConfig(wrong)
		defer w.sshConfig(kh)

		code, out, errOut := w.runStdin("yes\n", "trust", "e2e")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		wantAll(t, "stderr", errOut, "has CHANGED", "not adding the new one", "xvmview: hint: this may be an attack", "ssh-keygen -R "+w.g.Addr+" -f "+wrong)
		if strings.Contains(out, "Type yes") {
			t.Errorf("trust asked about a changed key:\n%s", out)
		}
		if after, _ := os.ReadFile(wrong); !bytes.Equal(before, after) {
			t.Errorf("known_hosts changed:\n%s", after)
		}

		code, out, _ = w.runStdin("", "check", "e2e")
		if code != 1 {
			t.Errorf("check: exit %d, want 1", code)
		}
		wantAll(t, "check stdout", out, "FAIL host key: CHANGED: ", w.g.HostKeyFingerprint, "skip login: ")
	})
}
