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

// TestCheckReportsSSH: check (and then run) shows the ssh settings in effect with the file
// and line each came from, each ProxyJump hop, which identity file needs a
// passphrase, and the guest user's login shell, for a guest behind a jump
// host (a second test guest, defined in an Include'd file) reached with an
// encrypted key (its passphrase from askpass) and with tcsh as login shell.
func TestCheckReportsSSH(t *testing.T) {
	requireTools(t, "ssh", "ssh-keygen", "tcsh")
	w := newWorld(t, true)
	j := testguest.Start(t, testguest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := j.Link(ctx, w.g); err != nil {
		t.Fatal(err)
	}
	tcsh, err := exec.LookPath("tcsh")
	must(t, err)
	if out, err := exec.Command("usermod", "-s", tcsh, w.g.User).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v: %s", err, out)
	}

	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "id_enc")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-a", "2", "-N", "check pass", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(w.g.Home, ".ssh", "authorized_keys"), pub, 0o644))
	askpass := filepath.Join(keyDir, "askpass")
	must(t, os.WriteFile(askpass, []byte("#!/bin/sh\necho 'check pass'\n"), 0o755))
	w.env0 = []string{"SSH_ASKPASS=" + askpass}

	inc := filepath.Join(w.home, ".ssh", "config.d")
	must(t, os.Mkdir(inc, 0o700))
	must(t, os.WriteFile(filepath.Join(inc, "jump.conf"), []byte(j.HostStanza("jump", j.KnownHosts)), 0o600))
	cfgPath := filepath.Join(w.home, ".ssh", "config")
	cfg := fmt.Sprintf(`Include %s/*.conf
Host behind
	HostName %s
	User %s
	IdentityFile %s
	IdentitiesOnly yes
	UserKnownHostsFile %s
	ProxyJump jump
`, inc, w.g.Addr, w.g.User, key, w.g.KnownHosts)
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	w.profile("behind", `host = "behind"
command = ["xlogo"]
window_manager = ["twm"]
`)

	code, out, _ := w.runStdin("", "check", "behind")
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	wantAll(t, "stdout", out,
		"ok   ssh settings: behind = "+w.g.User+"@"+w.g.Addr+":22 through 1 jump host(s)\n",
		"       hostname "+w.g.Addr+"  ("+cfgPath+":3)\n",
		"       proxyjump jump  ("+cfgPath+":8)\n",
		"       identitiesonly yes  ("+cfgPath+":6)\n",
		"       jump host 1 of 1: jump = "+j.User+"@"+j.Addr+":22\n",
		"ok   keys: 1 identity file(s), 1 need a passphrase at login\n",
		"       "+key+": passphrase-protected: asked at login (ssh-ed25519 SHA256:",
		"ok   guest reachable: behind at "+w.g.Addr+":22",
		"ok   login: as "+w.g.User+"\n",
		"ok   login shell: "+tcsh+" (",
		"ok   command on guest: /")
	if strings.Contains(out, "FAIL") {
		t.Errorf("check failed:\n%s", out)
	}

	// A whole session through the jump host, X carried inside the SSH
	// connection that runs through it.
	w.profile("behind-run", `host = "behind"
command = ["sh", "-c", "exit 5"]
window_manager = ["twm"]
`)
	l := w.start("run", "behind-run")
	if st := l.wait(t); st != 5 {
		t.Errorf("run through the jump host: exit status %d, want the app's 5; stderr:\n%s", st, l.stderr.String())
	}
}
