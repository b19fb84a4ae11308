package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/session"
)

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

// TestVMHints: each VM error gets its hint through the one hintFor.
func TestVMHints(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&session.VMNoDaemonError{URI: "qemu:///system"}, "start libvirt"},
		{&session.VMPermissionError{URI: "qemu:///system"}, "add yourself to the libvirt group"},
		{&session.VMConnectError{URI: "xen:///system"}, "`virsh -c xen:///system list --all`"},
		{&session.VMUnknownDomainError{URI: "qemu:///system", Domain: "x", Known: []string{"a", "b"}}, "its domains: a, b; fix the profile's vm key"},
		{&session.VMUnknownDomainError{URI: "qemu:///system", Domain: "x"}, "`virsh -c qemu:///system list --all` lists the domains"},
		{&session.VMStartError{URI: "qemu:///system", Domain: "web", Action: "start"}, "`virsh -c qemu:///system start web`"},
		{&session.VMBootTimeoutError{Domain: "web"}, "boot_timeout"},
		{&session.VMStoppedError{Domain: "web"}, "virsh console web"},
		{&session.NoVMError{Profile: "p"}, `add vm = "DOMAIN"`},
		{&session.VMInUseError{Domain: "web"}, "xvmview stop ID"},
	}
	for _, tt := range tests {
		if got := hintFor(fmt.Errorf("wrapped: %w", tt.err), "p", ""); !strings.Contains(got, tt.want) {
			t.Errorf("hint for %T: %q, want it to contain %q", tt.err, got, tt.want)
		}
	}
}
