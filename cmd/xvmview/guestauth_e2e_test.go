package main

import (
	"fmt"
	"strings"
	"testing"
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
