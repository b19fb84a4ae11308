package profile

import (
	"strings"
	"testing"
	"time"
)

func TestParseVM(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want VM
	}{
		{"none", minimal, VM{}},
		{"defaults", minimal + `vm = "web-domu"` + "\n", VM{Domain: "web-domu", URI: DefaultVMURI, BootTimeout: DefaultBootTimeout}},
		{"every key", minimal + `vm = "web"
vm_uri = "xen:///system"
shutdown_on_exit = true
boot_timeout = 30
`, VM{Domain: "web", URI: "xen:///system", Shutdown: ShutdownStarted, BootTimeout: 30 * time.Second}},
		{"always", minimal + "vm = \"web\"\nshutdown_on_exit = \"always\"\n", VM{Domain: "web", URI: DefaultVMURI, Shutdown: ShutdownAlways, BootTimeout: DefaultBootTimeout}},
		{"false", minimal + "vm = \"web\"\nshutdown_on_exit = false\n", VM{Domain: "web", URI: DefaultVMURI, BootTimeout: DefaultBootTimeout}},
		{"socket and unix transport", minimal + "vm = \"web\"\nvm_uri = \"qemu+unix:///system?socket=/run/x/sock\"\n", VM{Domain: "web", URI: "qemu+unix:///system?socket=/run/x/sock", BootTimeout: DefaultBootTimeout}},
		{"session", minimal + "vm = \"web\"\nvm_uri = \"qemu:///session\"\n", VM{Domain: "web", URI: "qemu:///session", BootTimeout: DefaultBootTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p", "p.toml", []byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.VM != tt.want {
				t.Errorf("VM = %+v, want %+v", p.VM, tt.want)
			}
		})
	}
}

func TestParseVMBad(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // the error after "p.toml:"
	}{
		{"empty domain", minimal + "vm = \"\"\n", `3:6: vm: the domain name is empty`},
		{"slash", minimal + "vm = \"a/b\"\n", `3:6: vm: domain name "a/b" has a "/" or a control character`},
		{"control", minimal + "vm = \"a\\nb\"\n", `3:6: vm: domain name "a\nb" has a "/" or a control character`},
		{"option", minimal + "vm = \"-a\"\n", `3:6: vm: domain name "-a" starts with "-"`},
		{"vm on local", "host = \"local\"\ncommand = [\"x\"]\nvm = \"web\"\n", `3:6: vm is only for remote guests; a profile with host = "local" has no VM`},
		{"uri without vm", minimal + "vm_uri = \"qemu:///system\"\n", `3:10: vm_uri needs vm = "DOMAIN", the libvirt domain behind the guest`},
		{"shutdown without vm", minimal + "shutdown_on_exit = true\n", `3:20: shutdown_on_exit needs vm = "DOMAIN", the libvirt domain behind the guest`},
		{"timeout without vm", minimal + "boot_timeout = 5\n", `3:16: boot_timeout needs vm = "DOMAIN", the libvirt domain behind the guest`},
		{"remote uri", minimal + "vm = \"w\"\nvm_uri = \"qemu+ssh://host/system\"\n", `4:10: vm_uri: "qemu+ssh://host/system": only local connections over libvirt's unix socket are supported (no +ssh)`},
		{"host in uri", minimal + "vm = \"w\"\nvm_uri = \"qemu://host/system\"\n", `4:10: vm_uri: "qemu://host/system" names a host; only local connections are supported (write qemu:///system)`},
		{"other driver", minimal + "vm = \"w\"\nvm_uri = \"lxc:///system\"\n", `4:10: vm_uri: "lxc:///system": the driver must be qemu or xen (e.g. "qemu:///system" or "xen:///system")`},
		{"bad path", minimal + "vm = \"w\"\nvm_uri = \"qemu:///sys\"\n", `4:10: vm_uri: "qemu:///sys": the path must be /system (or /session for qemu)`},
		{"xen session", minimal + "vm = \"w\"\nvm_uri = \"xen:///session\"\n", `4:10: vm_uri: "xen:///session": the path must be /system (or /session for qemu)`},
		{"other parameter", minimal + "vm = \"w\"\nvm_uri = \"qemu:///system?no_verify=1\"\n", `4:10: vm_uri: "qemu:///system?no_verify=1": the only parameter supported is socket=/path`},
		{"relative socket", minimal + "vm = \"w\"\nvm_uri = \"qemu:///system?socket=x\"\n", `4:10: vm_uri: "qemu:///system?socket=x": socket must be an absolute path`},
		{"not a uri", minimal + "vm = \"w\"\nvm_uri = \"system\"\n", `4:10: vm_uri: "system": the driver must be qemu or xen (e.g. "qemu:///system" or "xen:///system")`},
		{"shutdown word", minimal + "vm = \"w\"\nshutdown_on_exit = \"yes\"\n", `4:20: shutdown_on_exit "yes" is not true, false or "always"`},
		{"shutdown number", minimal + "vm = \"w\"\nshutdown_on_exit = 1\n", `4:20: shutdown_on_exit must be true, false or "always"`},
		{"timeout zero", minimal + "vm = \"w\"\nboot_timeout = 0\n", `4:16: boot_timeout 0 is out of range: seconds, from 1 to 3600`},
		{"timeout huge", minimal + "vm = \"w\"\nboot_timeout = 99999\n", `4:16: boot_timeout 99999 is out of range: seconds, from 1 to 3600`},
		{"timeout string", minimal + "vm = \"w\"\nboot_timeout = \"2m\"\n", `4:16: boot_timeout must be an integer: seconds, e.g. 120, not a string`},
		{"alias", minimal + "domain = \"w\"\n", `3:1: unknown key "domain" (did you mean "vm"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p", "p.toml", []byte(tt.doc))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if got := strings.TrimPrefix(err.Error(), "p.toml:"); got != tt.want {
				t.Errorf("error\n got  %s\n want %s", got, tt.want)
			}
		})
	}
}
