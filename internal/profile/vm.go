package profile

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultVMURI is the libvirt connection of a profile that names a vm and no
// vm_uri: the system instance of the QEMU/KVM driver.
const DefaultVMURI = "qemu:///system"

// DefaultBootTimeout bounds the wait for a VM's sshd after xvmview started
// or resumed it, for a profile that sets no boot_timeout.
const DefaultBootTimeout = 120 * time.Second

// MaxBootTimeout is the largest boot_timeout a profile may set.
const MaxBootTimeout = time.Hour

// The values of shutdown_on_exit.
const (
	ShutdownNever   = ""        // false, the default: the VM keeps running
	ShutdownStarted = "started" // true: only a VM that xvmview started
	ShutdownAlways  = "always"  // "always": also a VM that ran before
)

// VM names the libvirt domain behind a profile's guest. The zero value (an
// empty Domain) means the profile has none: xvmview never starts or stops
// anything.
type VM struct {
	Domain      string        // libvirt domain name
	URI         string        // libvirt connection URI, DefaultVMURI when unset
	Shutdown    string        // ShutdownNever, ShutdownStarted or ShutdownAlways
	BootTimeout time.Duration // DefaultBootTimeout when unset
}

// vmKeys are the keys that only make sense with vm.
var vmKeys = []string{"vm_uri", "shutdown_on_exit", "boot_timeout"}

// checkVM validates the vm keys and fills in p.VM.
func (c *checker) checkVM(p *Profile, f file) {
	if !c.set("vm") {
		for _, k := range vmKeys {
			if c.set(k) {
				c.fail(k, -1, `%s needs vm = "DOMAIN", the libvirt domain behind the guest`, k)
			}
		}
		return
	}
	if p.Local() {
		c.fail("vm", -1, "vm is only for remote guests; a profile with host = %q has no VM", LocalHost)
		return
	}
	if err := ValidDomain(f.VM); err != nil {
		c.fail("vm", -1, "vm: %v", err)
	}
	v := VM{Domain: f.VM, URI: DefaultVMURI, BootTimeout: DefaultBootTimeout}
	if c.set("vm_uri") {
		if err := ValidVMURI(f.VMURI); err != nil {
			c.fail("vm_uri", -1, "vm_uri: %v", err)
		}
		v.URI = f.VMURI
	}
	if c.set("boot_timeout") {
		if f.BootTimeout < 1 || time.Duration(f.BootTimeout)*time.Second > MaxBootTimeout {
			c.fail("boot_timeout", -1, "boot_timeout %d is out of range: seconds, from 1 to %d", f.BootTimeout, int(MaxBootTimeout.Seconds()))
		}
		v.BootTimeout = time.Duration(f.BootTimeout) * time.Second
	}
	switch s := f.ShutdownOnExit.(type) {
	case nil:
	case bool:
		if s {
			v.Shutdown = ShutdownStarted
		}
	case string:
		if s != ShutdownAlways {
			c.fail("shutdown_on_exit", -1, `shutdown_on_exit %q is not true, false or "always"`, s)
		}
		v.Shutdown = ShutdownAlways
	default:
		c.fail("shutdown_on_exit", -1, `shutdown_on_exit must be true, false or "always"`)
	}
	p.VM = v
}

// ValidDomain checks a libvirt domain name: not empty, at most 200 bytes,
// no "/" (libvirt keeps a file per domain) and no control characters.
func ValidDomain(d string) error {
	switch {
	case d == "":
		return fmt.Errorf("the domain name is empty")
	case len(d) > 200:
		return fmt.Errorf("the domain name is %d bytes long, more than 200", len(d))
	case strings.ContainsRune(d, '/') || hasControl(d) || !utf8.ValidString(d):
		return fmt.Errorf("domain name %q has a \"/\" or a control character", d)
	case strings.HasPrefix(d, "-"):
		return fmt.Errorf("domain name %q starts with \"-\"", d)
	}
	return nil
}

// ValidVMURI checks a libvirt connection URI of the kind xvmview can use: a
// local driver's system or session instance reached over its unix socket,
// "qemu:///system", "qemu:///session", "xen:///system" (also written
// "qemu+unix:///system"), with an optional "?socket=/absolute/path".
func ValidVMURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return fmt.Errorf("%q is not a URI like %q", s, DefaultVMURI)
	}
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	switch {
	case driver != "qemu" && driver != "xen":
		return fmt.Errorf("%q: the driver must be qemu or xen (e.g. %q or \"xen:///system\")", s, DefaultVMURI)
	case transport != "" && transport != "unix":
		return fmt.Errorf("%q: only local connections over libvirt's unix socket are supported (no +%s)", s, transport)
	case u.Host != "" || u.User != nil:
		return fmt.Errorf("%q names a host; only local connections are supported (write %s:///%s)", s, u.Scheme, strings.TrimPrefix(u.Path, "/"))
	case u.Path != "/system" && !(u.Path == "/session" && driver == "qemu"):
		return fmt.Errorf("%q: the path must be /system (or /session for qemu)", s)
	case u.Fragment != "":
		return fmt.Errorf("%q has a fragment", s)
	}
	for k, vs := range u.Query() {
		if k != "socket" || len(vs) != 1 {
			return fmt.Errorf("%q: the only parameter supported is socket=/path", s)
		}
		if !filepath.IsAbs(vs[0]) || hasControl(vs[0]) {
			return fmt.Errorf("%q: socket must be an absolute path", s)
		}
	}
	return nil
}
