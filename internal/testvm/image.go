// Package testvm provides a real VM guest for end-to-end tests: a small
// Debian root file system built from Debian's packages with mmdebstrap
// (systemd, openssh-server, xauth, x11-apps), booted with this machine's
// kernel as a libvirt QEMU domain (type "qemu": TCG, since KVM hangs on
// these machines) whose sshd the host reaches through QEMU user networking
// forwarding a loopback port to the guest's port 22.
//
// The image is built once and cached under CacheRoot in a directory named
// by a hash of everything that goes into it (the package list, the build
// steps' version, the kernel): later runs only copy its disk and boot it.
// The guest's host key is made at build time, so a test pins it in its
// known_hosts; the client key authorised for the guest user is cached next
// to the image (0600, root's).
//
// Each VM is a transient test domain named xvmtest-PID-N; Close destroys and
// undefines it and removes its files. New also removes domains that a
// crashed test process left (its PID no longer runs).
//
// It needs root, mmdebstrap, e2fsprogs, openssh-client (ssh-keygen), kmod,
// qemu-system-x86, a kernel in /boot (linux-image-amd64) and a running
// libvirtd with virtlogd (libvirt-daemon-system; .ci/run starts them). Missing
// any is a *testguest.PrereqError.
package testvm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/xvmview/xvmview/internal/testguest"
)

// CacheRoot holds the built images, one directory per build key.
const CacheRoot = "/var/cache/xvmview-test"

// Suite is the Debian release of the guest.
const Suite = "bookworm"

// Packages are installed into the guest on top of mmdebstrap's minbase
// variant. dbus lets systemd-logind run, which turns the ACPI power button
// into a clean shutdown.
var Packages = []string{"systemd-sysv", "udev", "dbus", "openssh-server", "xauth", "x11-apps", "iproute2"}

// recipe is the version of the build steps below: change it when they
// change, so that cached images are rebuilt.
const recipe = "4"

// GuestUser is the guest's login user.
const GuestUser = "xvm"

// guestModules are the kernel modules the guest needs beyond its initrd's:
// the ACPI power button and the input event devices systemd-logind watches
// for it.
var guestModules = []string{"button", "evdev"}

// Image is a built guest image. Its files are shared by every test: a VM
// boots a copy of Disk.
type Image struct {
	Dir        string
	Disk       string // raw ext4 root file system, the guest's /dev/vda
	Kernel     string
	Initrd     string
	ClientKey  string        // private key (0600) authorised for GuestUser
	HostKey    ssh.PublicKey // the guest's ed25519 host key
	KernelName string        // the kernel it was built for, e.g. vmlinuz-6.1.0-57-amd64
}

// hostKernel returns this machine's newest kernel and its initrd in /boot.
func hostKernel() (kernel, initrd, version string, err error) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	slices.Sort(ks)
	for i := len(ks) - 1; i >= 0; i-- {
		v := strings.TrimPrefix(filepath.Base(ks[i]), "vmlinuz-")
		rd := "/boot/initrd.img-" + v
		if _, err := os.Stat(rd); err == nil {
			if _, err := os.Stat("/lib/modules/" + v); err == nil {
				return ks[i], rd, v, nil
			}
		}
	}
	return "", "", "", &testguest.PrereqError{What: "a kernel with initrd and modules in /boot", Hint: "install the linux-image-amd64 package"}
}

// needPrograms returns a *testguest.PrereqError for the first program missing.
func needPrograms() error {
	if os.Geteuid() != 0 {
		return &testguest.PrereqError{What: "root", Hint: "run the VM tests as root"}
	}
	for _, p := range [][2]string{
		{"mmdebstrap", "mmdebstrap"}, {"mkfs.ext4", "e2fsprogs"}, {"ssh-keygen", "openssh-client"},
		{"modprobe", "kmod"}, {"depmod", "kmod"}, {"systemctl", "systemd"}, {"chroot", "coreutils"},
		{"qemu-system-x86_64", "qemu-system-x86"},
	} {
		if _, err := exec.LookPath(p[0]); err != nil {
			return &testguest.PrereqError{What: "program " + p[0], Hint: "install the " + p[1] + " package (scripts/install-deps.sh)"}
		}
	}
	return nil
}

// BuildImage returns the cached image for this machine's kernel, building
// it first when there is none (about 30-60 s; several test processes at
// once build it once). logf reports the build.
func BuildImage(ctx context.Context, logf func(string, ...any)) (*Image, error) {
	if err := needPrograms(); err != nil {
		return nil, err
	}
	kernel, initrd, kver, err := hostKernel()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "recipe %s\nsuite %s\npackages %s\nkernel %s\n", recipe, Suite, strings.Join(Packages, ","), kver)
	if fi, err := os.Stat(kernel); err == nil {
		fmt.Fprintf(h, "kernel size %d mtime %d\n", fi.Size(), fi.ModTime().Unix())
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(CacheRoot, key)
	img := &Image{
		Dir: dir, Disk: filepath.Join(dir, "disk.img"), Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initrd.img"), ClientKey: filepath.Join(dir, "id_ed25519"),
		KernelName: filepath.Base(kernel),
	}
	if err := os.MkdirAll(CacheRoot, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(CacheRoot, ".build.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "ok")); err != nil {
		start := time.Now()
		logf("building the test VM image %s (mmdebstrap %s with %s)", dir, Suite, strings.Join(Packages, ", "))
		if err := build(ctx, dir, kernel, initrd, kver); err != nil {
			return nil, fmt.Errorf("build test VM image: %w", err)
		}
		logf("built the test VM image in %.1fs", time.Since(start).Seconds())
		// Images of other keys (older recipes, kernels) are of no more use.
		old, _ := filepath.Glob(filepath.Join(CacheRoot, "*"))
		for _, o := range old {
			if o != dir && !strings.HasPrefix(filepath.Base(o), ".") {
				_ = os.RemoveAll(o)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		return nil, err
	}
	if img.HostKey, _, _, _, err = ssh.ParseAuthorizedKey(b); err != nil {
		return nil, fmt.Errorf("guest host key: %w", err)
	}
	return img, nil
}

// build makes the image in a temporary directory next to dir and renames it
// to dir when it is complete.
func build(ctx context.Context, dir, kernel, initrd, kver string) error {
	_ = os.RemoveAll(dir)
	tmp, err := os.MkdirTemp(CacheRoot, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// libvirt's QEMU runs as its own user: it must reach the image files.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	root := filepath.Join(tmp, "root")
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
		out, err := cmd.CombinedOutput()
		if err != nil {
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("mmdebstrap", "--variant=minbase", "--include="+strings.Join(Packages, ","), Suite, root); err != nil {
		return err
	}
	write := func(rel, content string, mode os.FileMode) error {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(content), mode)
	}
	files := []struct {
		rel, content string
	}{
		{"etc/hostname", "xvmtest\n"},
		// minbase has no /etc/hosts: without it "localhost" (the ssh
		// transport's DISPLAY) does not resolve.
		{"etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\txvmtest\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
		{"etc/machine-id", "0123456789abcdef0123456789abcdef\n"},
		{"etc/fstab", "/dev/vda / ext4 rw,noatime 0 1\n"},
		// QEMU user networking: the guest is 10.0.2.15, its gateway 10.0.2.2.
		{"etc/systemd/network/10-user.network", "[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n"},
		{"etc/ssh/sshd_config.d/xvmtest.conf", "UseDNS no\nPasswordAuthentication no\n"},
	}
	for _, f := range files {
		if err := write(f.rel, f.content, 0o644); err != nil {
			return err
		}
	}
	// Timers and first-boot jobs only slow a test guest's boot down.
	timers, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/timers.target.wants/*"))
	for _, t := range append(timers, filepath.Join(root, "etc/systemd/system/multi-user.target.wants/e2scrub_reap.service")) {
		_ = os.Remove(t)
	}
	steps := [][]string{
		{"systemctl", "--root=" + root, "enable", "systemd-networkd.service"},
		{"systemctl", "--root=" + root, "mask", "systemd-networkd-wait-online.service"},
		{"chroot", root, "useradd", "-m", "-s", "/bin/sh", GuestUser},
		{"chroot", root, "usermod", "-p", "*", GuestUser},
		{"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "xvmtest-client", "-f", filepath.Join(tmp, "id_ed25519")},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	pub, err := os.ReadFile(filepath.Join(tmp, "id_ed25519.pub"))
	if err != nil {
		return err
	}
	if err := write("home/"+GuestUser+"/.ssh/authorized_keys", string(pub), 0o600); err != nil {
		return err
	}
	if err := run("chroot", root, "chown", "-R", GuestUser+":"+GuestUser, "/home/"+GuestUser+"/.ssh"); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "home", GuestUser, ".ssh"), 0o700); err != nil {
		return err
	}
	if err := copyModules(ctx, root, kver); err != nil {
		return err
	}
	// The host key openssh-server's installation made.
	if err := copyFile(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key.pub"), filepath.Join(tmp, "ssh_host_ed25519_key.pub"), 0o644); err != nil {
		return err
	}
	if err := run("mkfs.ext4", "-q", "-d", root, "-L", "xvmroot", filepath.Join(tmp, "disk.img"), "1G"); err != nil {
		return err
	}
	if err := copyFile(kernel, filepath.Join(tmp, "vmlinuz"), 0o644); err != nil {
		return err
	}
	if err := copyFile(initrd, filepath.Join(tmp, "initrd.img"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "ok"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// copyModules puts guestModules (with what they depend on) of kernel kver
// into the guest and indexes them, so its udev loads them.
func copyModules(ctx context.Context, root, kver string) error {
	for _, m := range guestModules {
		out, err := exec.CommandContext(ctx, "modprobe", "--show-depends", "-S", kver, m).Output()
		if err != nil {
			return fmt.Errorf("modprobe --show-depends %s: %w", m, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "insmod" {
				continue // builtin
			}
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f[1])), 0o755); err != nil {
				return err
			}
			if err := copyFile(f[1], filepath.Join(root, f[1]), 0o644); err != nil {
				return err
			}
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		src := filepath.Join("/lib/modules", kver, f)
		if err := copyFile(src, filepath.Join(root, src), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if out, err := exec.CommandContext(ctx, "depmod", "-b", root, kver).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod: %w: %s", err, out)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// lockFile takes an exclusive flock on path, waiting until ctx ends.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
