package testvm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"golang.org/x/crypto/ssh"

	"github.com/xvmview/xvmview/internal/testguest"
)

// URI is the libvirt connection the test domains live in.
const URI = "qemu:///system"

// libvirtSocket is libvirtd's socket for URI.
const libvirtSocket = "/run/libvirt/libvirt-sock"

// Options configure a VM.
type Options struct {
	MemoryMiB int // default 384
	// Kernel replaces the image's kernel path in the domain: a path that
	// does not exist makes libvirt refuse to start it (a test of that).
	Kernel string
}

// VM is a defined (shut off) test domain and its files. Its fields are
// read-only.
type VM struct {
	Domain     string // libvirt domain name, xvmtest-PID-N
	Port       int    // loopback port forwarded to the guest's sshd
	Addr       string // "127.0.0.1:PORT"
	Dir        string // its disk copy, console log, known_hosts
	User       string // GuestUser
	Key        string // private key authorised for User
	KnownHosts string // known_hosts holding the guest's host key for [127.0.0.1]:Port
	ConsoleLog string // the guest's serial console
	Image      *Image

	l         *libvirt.Libvirt
	closeOnce sync.Once
	closeErr  error
}

var seq atomic.Int64

// dial connects to libvirtd; a missing daemon is a *testguest.PrereqError.
func dial() (*libvirt.Libvirt, error) {
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(libvirtSocket), dialers.WithLocalTimeout(5*time.Second)))
	if err := l.ConnectToURI(libvirt.QEMUSystem); err != nil {
		return nil, &testguest.PrereqError{What: "a running libvirtd (" + err.Error() + ")",
			Hint: "install libvirt-daemon-system and start it: libvirtd -d and virtlogd -d (.ci/run does)"}
	}
	return l, nil
}

// New defines a shut-off test domain that boots a copy of img's disk, with
// the guest's sshd forwarded to a free loopback port.
func New(ctx context.Context, img *Image, opts Options) (*VM, error) {
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 384
	}
	l, err := dial()
	if err != nil {
		return nil, err
	}
	removeLeftovers(l)
	v := &VM{Domain: fmt.Sprintf("xvmtest-%d-%d", os.Getpid(), seq.Add(1)), User: GuestUser, Image: img, l: l}
	if v.Port, err = freePort(); err != nil {
		l.Disconnect()
		return nil, err
	}
	v.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(v.Port))
	if v.Dir, err = os.MkdirTemp("", v.Domain+"-"); err != nil {
		l.Disconnect()
		return nil, err
	}
	// QEMU runs as libvirt's user: it must reach the disk in here.
	if err := os.Chmod(v.Dir, 0o711); err != nil {
		v.Close()
		return nil, err
	}
	v.Key = img.ClientKey
	v.KnownHosts = filepath.Join(v.Dir, "known_hosts")
	v.ConsoleLog = filepath.Join(v.Dir, "console.log")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", v.Port, ssh.MarshalAuthorizedKey(img.HostKey))
	if err := os.WriteFile(v.KnownHosts, []byte(line), 0o600); err != nil {
		v.Close()
		return nil, err
	}
	disk := filepath.Join(v.Dir, "disk.img")
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", img.Disk, disk).CombinedOutput(); err != nil {
		v.Close()
		return nil, fmt.Errorf("copy the test VM's disk: %v: %s", err, out)
	}
	var xml strings.Builder
	err = domainXML.Execute(&xml, map[string]any{
		"Name": v.Domain, "Memory": opts.MemoryMiB, "Kernel": cmp.Or(opts.Kernel, img.Kernel), "Initrd": img.Initrd,
		"Disk": disk, "Console": v.ConsoleLog, "Port": v.Port,
	})
	if err != nil {
		v.Close()
		return nil, err
	}
	if _, err := l.DomainDefineXMLFlags(xml.String(), 0); err != nil {
		v.Close()
		return nil, fmt.Errorf("define test domain %s: %w", v.Domain, err)
	}
	return v, nil
}

// domainXML boots the image's kernel with the disk copy as /dev/vda under
// TCG, with ACPI (for the power button), the serial console to a file and
// QEMU user networking forwarding 127.0.0.1:Port to the guest's port 22.
// The forward is on QEMU's command line: libvirt 9.0 forwards ports of
// user networking only with passt.
var domainXML = template.Must(template.New("domain").Parse(`<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{{.Name}}</name>
  <memory unit='MiB'>{{.Memory}}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{{.Kernel}}</kernel>
    <initrd>{{.Initrd}}</initrd>
    <cmdline>root=/dev/vda rw console=ttyS0 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{{.Disk}}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='{{.Console}}'/><target port='0'/></serial>
    <console type='file'><source path='{{.Console}}'/><target type='serial' port='0'/></console>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=xn0,hostfwd=tcp:127.0.0.1:{{.Port}}-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=xn0,addr=0x10'/>
  </qemu:commandline>
</domain>
`))

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// removeLeftovers destroys and undefines test domains whose test process
// is gone.
func removeLeftovers(l *libvirt.Libvirt) {
	ds, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		return
	}
	for _, d := range ds {
		rest, ok := strings.CutPrefix(d.Name, "xvmtest-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = l.DomainDestroy(d)
		_ = l.DomainUndefineFlags(d, 0)
	}
}

// State returns the domain's state as libvirt's number (libvirt.DomainState).
func (v *VM) State() (libvirt.DomainState, error) {
	d, err := v.l.DomainLookupByName(v.Domain)
	if err != nil {
		return 0, err
	}
	st, _, err := v.l.DomainGetState(d, 0)
	return libvirt.DomainState(st), err
}

// Start boots the domain.
func (v *VM) Start() error {
	d, err := v.l.DomainLookupByName(v.Domain)
	if err != nil {
		return err
	}
	return v.l.DomainCreate(d)
}

// Suspend pauses the running domain.
func (v *VM) Suspend() error {
	d, err := v.l.DomainLookupByName(v.Domain)
	if err != nil {
		return err
	}
	return v.l.DomainSuspend(d)
}

// Destroy forces the domain off; a domain that is off is no error.
func (v *VM) Destroy() error {
	d, err := v.l.DomainLookupByName(v.Domain)
	if err != nil {
		return err
	}
	if st, _, err := v.l.DomainGetState(d, 0); err == nil && libvirt.DomainState(st) == libvirt.DomainShutoff {
		return nil
	}
	return v.l.DomainDestroy(d)
}

// CheckState returns an error unless the domain is in state want now. No
// wait is needed where it is used: Destroy returns once the domain is off,
// and a launcher that shuts its VM down exits only after that.
func (v *VM) CheckState(want libvirt.DomainState) error {
	st, err := v.State()
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("domain %s is in state %d, not %d", v.Domain, st, want)
	}
	return nil
}

// HostStanza is an ssh_config stanza that reaches the guest as alias with
// strict host key checking against the pinned key.
func (v *VM) HostStanza(alias string) string {
	return testguest.HostStanza(alias, "127.0.0.1", v.Port, v.User, v.Key, v.KnownHosts)
}

// Console returns the tail of the guest's serial console, for failed tests.
func (v *VM) Console() string {
	b, _ := os.ReadFile(v.ConsoleLog)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// Close forces the domain off, undefines it and removes its files.
func (v *VM) Close() error {
	v.closeOnce.Do(func() {
		var errs []error
		if d, err := v.l.DomainLookupByName(v.Domain); err == nil {
			if st, _, err := v.l.DomainGetState(d, 0); err == nil && libvirt.DomainState(st) != libvirt.DomainShutoff {
				if err := v.l.DomainDestroy(d); err != nil {
					errs = append(errs, fmt.Errorf("destroy %s: %w", v.Domain, err))
				}
			}
			if err := v.l.DomainUndefineFlags(d, 0); err != nil {
				errs = append(errs, fmt.Errorf("undefine %s: %w", v.Domain, err))
			}
		} else if !libvirt.IsNotFound(err) {
			errs = append(errs, err)
		}
		if v.Dir != "" {
			if err := os.RemoveAll(v.Dir); err != nil {
				errs = append(errs, err)
			}
		}
		_ = v.l.Disconnect()
		v.closeErr = errors.Join(errs...)
	})
	return v.closeErr
}

// Start is BuildImage and New for tests: a missing prerequisite skips the
// test, or fails it under CI=true; Close is registered with tb.Cleanup, and
// a failed test gets the guest's console in its log.
func Start(tb testguest.TB, opts Options) *VM {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	img, err := BuildImage(ctx, tb.Logf)
	if err != nil {
		testguest.SkipOrFail(tb, err)
		return nil
	}
	v, err := New(ctx, img, opts)
	if err != nil {
		testguest.SkipOrFail(tb, err)
		return nil
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("console of test domain %s:\n%s", v.Domain, v.Console())
		}
		if err := v.Close(); err != nil {
			tb.Fatalf("%v", err)
		}
	})
	return v
}
