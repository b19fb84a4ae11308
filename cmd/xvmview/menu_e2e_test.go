package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// TestRunFromMenu launches as a desktop menu does: no terminal, a session
// bus with a notification service (a real dbus-daemon; the test's service
// records what the desktop would show) and an askpass program (a script
// that answers as the user would). The guest's host key is unknown and the
// user's ssh_config asks about it (no BatchMode, StrictHostKeyChecking
// ask), as a new user's does.
func TestRunFromMenu(t *testing.T) {
	requireTools(t, "ssh-keygen")
	bus := testguest.StartSessionBus(t)
	w := newWorld(t, true)
	kh := filepath.Join(w.home, ".ssh", "known_hosts")
	cfg := strings.NewReplacer("\tStrictHostKeyChecking yes\n", "", "\tBatchMode yes\n", "").Replace(w.g.HostStanza("e2eguest", kh))
	must(t, os.WriteFile(filepath.Join(w.home, ".ssh", "config"), []byte(cfg), 0o600))

	// The askpass program: logs its question and SSH_ASKPASS_PROMPT, waits
	// $dir/delay seconds, then answers $dir/answer, or refuses when that is
	// "REFUSE".
	dir := t.TempDir()
	askpass := filepath.Join(dir, "askpass")
	must(t, os.WriteFile(askpass, []byte(`#!/bin/sh
d=`+dir+`
printf '%s|%s\n' "$1" "${SSH_ASKPASS_PROMPT-}" >> "$d/log"
sleep "$(cat "$d/delay")"
a=$(cat "$d/answer")
[ "$a" = REFUSE ] && exit 1
printf '%s\n' "$a"
`), 0o755))
	answer := func(a string, delay string) {
		must(t, os.WriteFile(filepath.Join(dir, "answer"), []byte(a), 0o600))
		must(t, os.WriteFile(filepath.Join(dir, "delay"), []byte(delay), 0o600))
		_ = os.Remove(filepath.Join(dir, "log"))
	}
	asked := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		return string(b)
	}
	w.env0 = []string{"DBUS_SESSION_BUS_ADDRESS=" + bus.Address, "SSH_ASKPASS=" + askpass}
	w.profile("menu", `host = "e2eguest"
command = ["sh", "-c", "exit 0"]
window_manager = ["twm"]
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fingerprint := "ED25519 key fingerprint is " + w.g.HostKeyFingerprint

	t.Run("host key declined", func(t *testing.T) {
		answer("REFUSE", "0")
		before := len(bus.Notifications())
		l := w.start("run", "menu")
		if st := l.wait(t); st != 1 {
			t.Fatalf("exit status %d, want 1", st)
		}
		if q := asked(); !strings.Contains(q, fingerprint) || !strings.HasSuffix(q, "(yes/no)?|\n") {
			t.Errorf("askpass was asked %q, want the key's type and fingerprint, no SSH_ASKPASS_PROMPT", q)
		}
		if b, _ := os.ReadFile(kh); len(b) != 0 {
			t.Errorf("known_hosts = %q after a refusal, want nothing", b)
		}
		ns, err := bus.WaitNotifications(ctx, before+1)
		if err != nil {
			t.Fatal(err)
		}
		last := ns[len(ns)-1]
		if last.Summary != "menu did not run" || !strings.Contains(last.Body, "error: unknown host key") ||
			!strings.Contains(last.Body, "was not accepted") || !strings.Contains(last.Body, "\nhint: ") {
			t.Errorf("notification %+v, want the error and its hint", last)
		}
		// The same words as on stderr.
		if !strings.Contains(l.stderr.String(), "xvmview: error: "+strings.TrimPrefix(strings.SplitN(last.Body, "\n", 2)[0], "error: ")) {
			t.Errorf("the notification's error %q differs from stderr:\n%s", last.Body, l.stderr.String())
		}
	})

	t.Run("slow yes", func(t *testing.T) {
		answer("yes", "1.5")
		before := len(bus.Notifications())
		l := w.start("run", "menu")
		if st := l.wait(t); st != 0 {
			t.Fatalf("exit status %d, want 0; stderr:\n%s", st, l.stderr.String())
		}
		if q := asked(); !strings.Contains(q, fingerprint) {
			t.Errorf("askpass was asked %q", q)
		}
		if b, _ := os.ReadFile(kh); !strings.Contains(string(b), "ssh-ed25519") {
			t.Errorf("known_hosts = %q after yes, want the key", b)
		}
		ns := bus.Notifications()[before:]
		var progress *testguest.Notification
		for i, n := range ns {
			if n.Summary == "Starting menu" && n.Body == "Waiting for the login to e2eguest." {
				progress = &ns[i]
			}
		}
		if progress == nil {
			t.Fatalf("notifications %+v, want one saying the start waits for the login", ns)
		}
		closed := false
		for _, id := range bus.Closed() {
			closed = closed || id == progress.ID
		}
		if !closed {
			t.Errorf("the progress notification %d stayed after the app started (closed: %v)", progress.ID, bus.Closed())
		}
	})

	t.Run("notice", func(t *testing.T) {
		w.profile("menu-tcp", `host = "e2eguest"
command = ["sh", "-c", "exit 0"]
window_manager = ["twm"]
transport = "tcp"
`)
		before := len(bus.Notifications())
		l := w.start("run", "menu-tcp")
		if st := l.wait(t); st != 0 {
			t.Fatalf("exit status %d, want 0; stderr:\n%s", st, l.stderr.String())
		}
		var found bool
		for _, n := range bus.Notifications()[before:] {
			found = found || (n.Summary == "xvmview: menu-tcp" && strings.Contains(n.Body, "in clear"))
		}
		if !found {
			t.Errorf("notifications %+v, want the transport tcp notice", bus.Notifications()[before:])
		}
	})

	t.Run("encrypted key", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "id_enc")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-a", "2", "-N", "menu pass", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		must(t, os.Chmod(filepath.Dir(key), 0o755))
		pub, err := os.ReadFile(key + ".pub")
		must(t, err)
		ak := filepath.Join(w.g.Home, ".ssh", "authorized_keys")
		old, err := os.ReadFile(ak)
		must(t, err)
		must(t, os.WriteFile(ak, pub, 0o644)) // only the encrypted key is accepted now
		defer func() { _ = os.WriteFile(ak, old, 0o644) }()
		w.profile("menu-key", fmt.Sprintf(`host = "e2eguest"
identity_file = %q
command = ["sh", "-c", "exit 0"]
window_manager = ["twm"]
`, key))
		answer("menu pass", "0")
		l := w.start("run", "menu-key")
		if st := l.wait(t); st != 0 {
			t.Fatalf("exit status %d, want 0; stderr:\n%s", st, l.stderr.String())
		}
		if q := asked(); q != "Enter passphrase for key '"+key+"': |\n" {
			t.Errorf("askpass was asked %q, want the passphrase once", q)
		}
		answer("wrong", "0")
		l = w.start("run", "menu-key")
		if st := l.wait(t); st != 1 {
			t.Fatalf("exit status %d with a wrong passphrase, want 1", st)
		}
		if n := strings.Count(asked(), "passphrase for key"); n != 3 {
			t.Errorf("asked %d times, want 3:\n%s", n, asked())
		}
		if !strings.Contains(l.stderr.String(), "wrong passphrase for "+key+", 3 times") {
			t.Errorf("stderr lacks the passphrase error:\n%s", l.stderr.String())
		}
		answer("REFUSE", "0")
		l = w.start("run", "menu-key")
		if st := l.wait(t); st != 1 {
			t.Fatalf("exit status %d when askpass refuses, want 1", st)
		}
		if n := strings.Count(asked(), "passphrase for key"); n != 1 {
			t.Errorf("asked %d times after a refusal, want 1:\n%s", n, asked())
		}
		if !strings.Contains(l.stderr.String(), "no passphrase for "+key) {
			t.Errorf("stderr lacks the refusal:\n%s", l.stderr.String())
		}
	})
}
