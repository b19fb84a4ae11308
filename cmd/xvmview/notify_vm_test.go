package main

import "testing"

// TestWaitingForVM: while the VM boots, the desktop's "waiting for" says so;
// once it is up, the launch waits for Xephyr and the login as usual.
func TestWaitingForVM(t *testing.T) {
	for phase, want := range map[string]string{
		"waiting for domain web-domu's sshd at 10.1.0.5:22": "the VM web-domu to boot",
		"domain web-domu is up":                             "Xephyr to start and the login to web",
		"domain web-domu is running":                        "Xephyr to start and the login to web",
	} {
		if got := waitingFor(phase, "web"); got != want {
			t.Errorf("waitingFor(%q) = %q, want %q", phase, got, want)
		}
	}
}
