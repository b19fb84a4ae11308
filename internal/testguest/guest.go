package testguest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/procfs"
	"golang.org/x/crypto/ssh"
)

const (
	maxGuests    = 200              // netns names xvt-1 .. xvt-200
	sshdPath     = "/usr/sbin/sshd" // started by absolute path, never via PATH
	sshdPort     = 22               // the guest has its own network namespace
	netnsDir     = "/run/netns"     // where `ip netns add` pins namespaces
	privsepDir   = "/run/sshd"      // sshd's privilege separation directory
	startTimeout = 60 * time.Second // bound for Start/StartXvfb and ctx without deadline
	closeTimeout = 30 * time.Second
)

// Options configures a Guest.
type Options struct {
	// SSHDConfig holds extra sshd_config lines, e.g. "AllowTcpForwarding no".
	// They take precedence over the defaults (sshd uses the first value it
	// reads): lines before the first "Match" go to the top of the file, a
	// Match line and everything after it to the end.
	SSHDConfig []string
}

// Guest is a running SSH test guest: user User on Addr:Port, reachable from
// the host through a veth pair. Its fields are read-only.
type Guest struct {
	Namespace          string // netns name, e.g. "xvt-3"
	HostAddr           string // host end of the veth, e.g. "10.213.3.1"
	Addr               string // guest address, e.g. "10.213.3.2"
	Port               int    // sshd port inside the netns
	User               string // guest user name, unique per guest, e.g. "xvt3"
	UID, GID           int
	Home               string // guest home directory
	Alias              string // Host alias defined in SSHConfig
	Dir                string // private 0700 dir holding keys and config (removed on Close)
	IdentityFile       string // client private key (ed25519, 0600) authorised for User
	KnownHosts         string // known_hosts with only this guest's host key, for Addr, [Addr]:Port (Port != 22) and Alias
	SSHConfig          string // ssh_config defining Alias (strict host key checking, IdentitiesOnly, BatchMode)
	HostKeyFingerprint string // "SHA256:..." of the guest's host key
	SSHDPID            int

	s *guestState
}

// guestState records what New created, so Close removes exactly that.
type guestState struct {
	n        int
	ip       string // path of ip(8)
	setpriv  string // path of setpriv(1)
	useradd  string // path of useradd(8)
	userdel  string // path of userdel(8)
	hostLink string // host end of the veth
	nsIno    uint64 // inode of the namespace, to find processes inside it
	hostKey  ssh.PublicKey

	nsCreated, linkCreated, userCreated, homeCreated bool

	sshd     *exec.Cmd
	sshdLog  *LogBuffer
	waitDone chan struct{} // closed when sshd has been reaped

	closeOnce sync.Once
	closeErr  error
}

// New creates a guest: it allocates the first free index N in 1..200 by
// creating the network namespace xvt-N (so concurrent test binaries and
// leftovers of crashed runs never collide), adds the veth pair
// 10.213.N.1/30 (host) - 10.213.N.2/30 (guest), creates user xvtN with home
// /home/xvtN, writes keys and configs into a fresh 0700 Dir and starts sshd
// inside the namespace. ctx bounds only the start-up; the guest lives until
// Close. New needs root.
//
// It returns a *PrereqError when a prerequisite is missing, and an error
// naming the failed step otherwise; everything made before the failure has
// been removed again.
func New(ctx context.Context, opts Options) (*Guest, error) {
	g, err := create(ctx, opts)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// create does New's work. On error it has already closed the partial guest,
// which it returns anyway so tests can check that nothing was left behind.
func create(ctx context.Context, opts Options) (g *Guest, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	s := &guestState{sshdLog: NewLogBuffer(1 << 20)}
	g = &Guest{Port: sshdPort, s: s}
	if err := checkPrereqs(s); err != nil {
		return g, err
	}
	defer func() {
		if err != nil {
			if cerr := g.Close(); cerr != nil {
				err = fmt.Errorf("%w; cleaning up also failed: %v", err, cerr)
			}
		}
	}()

	if err := allocate(ctx, g); err != nil {
		return g, err
	}
	if g.Dir, err = os.MkdirTemp("", g.Namespace+"-"); err != nil {
		return g, fmt.Errorf("make private dir for test guest %s: %w", g.Namespace, err)
	}
	if err := os.Chmod(g.Dir, 0o700); err != nil {
		return g, fmt.Errorf("make private dir for test guest: %w", err)
	}
	if err := setupNetwork(ctx, g); err != nil {
		return g, err
	}
	if err := createUser(ctx, g); err != nil {
		return g, err
	}
	if err := writeKeysAndConfig(g, opts); err != nil {
		return g, err
	}
	if err := startSSHD(ctx, g); err != nil {
		return g, err
	}
	return g, nil
}

func checkPrereqs(s *guestState) error {
	if os.Geteuid() != 0 {
		return &PrereqError{What: "root privileges for the SSH test guest", Hint: "run the end-to-end tests as root"}
	}
	var err error
	if s.ip, err = findProgram("ip", "iproute2"); err != nil {
		return err
	}
	if s.setpriv, err = findProgram("setpriv", "util-linux"); err != nil {
		return err
	}
	if s.useradd, err = findProgram("useradd", "passwd"); err != nil {
		return err
	}
	if s.userdel, err = findProgram("userdel", "passwd"); err != nil {
		return err
	}
	if fi, err := os.Stat(sshdPath); err != nil || !fi.Mode().IsRegular() {
		return &PrereqError{What: sshdPath, Hint: "install the openssh-server package"}
	}
	return nil
}

// findProgram looks name up in PATH and then in the sbin/bin directories,
// which a non-login root shell may lack.
func findProgram(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &PrereqError{What: "program " + name, Hint: "install the " + pkg + " package"}
}

// allocate claims the first free index N by creating netns xvt-N, which
// fails if it exists. A claimed N whose user, group, home or veth exists
// already (left over by a crashed run, or another guest still closing) is
// released again and skipped: we never touch what we did not create.
func allocate(ctx context.Context, g *Guest) error {
	s := g.s
	for n := 1; n <= maxGuests; n++ {
		ns := fmt.Sprintf("xvt-%d", n)
		if _, err := os.Lstat(filepath.Join(netnsDir, ns)); err == nil {
			continue
		}
		out, err := command(ctx, s.ip, "netns", "add", ns).CombinedOutput()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("create network namespace %s: %w", ns, ctx.Err())
			}
			msg := strings.TrimSpace(string(out))
			if strings.Contains(msg, "File exists") {
				continue
			}
			if strings.Contains(msg, "Operation not permitted") || strings.Contains(msg, "Permission denied") {
				return &PrereqError{What: "permission to create network namespaces (ip netns add " + ns + ": " + msg + ")",
					Hint: "run as root with CAP_SYS_ADMIN and CAP_NET_ADMIN"}
			}
			return fmt.Errorf("create network namespace %s: %w: %s", ns, err, msg)
		}
		user := fmt.Sprintf("xvt%d", n)
		link := fmt.Sprintf("xvt%dh", n)
		home := filepath.Join("/home", user)
		if leftover(user, link, home) {
			if out, err := command(ctx, s.ip, "netns", "del", ns).CombinedOutput(); err != nil {
				return fmt.Errorf("release network namespace %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
			}
			continue
		}
		s.n, s.nsCreated, s.hostLink = n, true, link
		fi, err := os.Stat(filepath.Join(netnsDir, ns))
		if err != nil {
			return fmt.Errorf("inspect network namespace %s: %w", ns, err)
		}
		s.nsIno = fi.Sys().(*syscall.Stat_t).Ino
		g.Namespace = ns
		g.HostAddr = fmt.Sprintf("10.213.%d.1", n)
		g.Addr = fmt.Sprintf("10.213.%d.2", n)
		g.User = user
		g.Home = home
		g.Alias = ns
		return nil
	}
	return fmt.Errorf("no free test guest index: network namespaces xvt-1..xvt-%d all exist or have leftovers; "+
		"remove stale ones with `ip netns del xvt-N; userdel -r xvtN`", maxGuests)
}

func leftover(userName, link, home string) bool {
	if _, err := user.Lookup(userName); err == nil {
		return true
	}
	if _, err := user.LookupGroup(userName); err == nil {
		return true
	}
	if _, err := net.InterfaceByName(link); err == nil {
		return true
	}
	if _, err := os.Lstat(home); err == nil {
		return true
	}
	return false
}

func setupNetwork(ctx context.Context, g *Guest) error {
	s := g.s
	peer := fmt.Sprintf("xvt%dg", s.n)
	if err := run(ctx, s.ip, "link", "add", s.hostLink, "type", "veth", "peer", "name", peer, "netns", g.Namespace); err != nil {
		return fmt.Errorf("create veth pair for test guest: %w", err)
	}
	s.linkCreated = true
	steps := [][]string{
		{"addr", "add", g.HostAddr + "/30", "dev", s.hostLink},
		{"link", "set", s.hostLink, "up"},
		{"-n", g.Namespace, "addr", "add", g.Addr + "/30", "dev", peer},
		{"-n", g.Namespace, "link", "set", peer, "up"},
		{"-n", g.Namespace, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if err := run(ctx, s.ip, args...); err != nil {
			return fmt.Errorf("configure test guest network: %w", err)
		}
	}
	return nil
}

const twmrc = `# Written by xvmview's testguest: twm must never wait for a click to place a
# window, nor hold a server grab while doing so.
RandomPlacement
NoGrabServer
`

func createUser(ctx context.Context, g *Guest) error {
	s := g.s
	// A locked password ("!", useradd's default) makes sshd with UsePAM no
	// refuse even public keys; "*" means no password but not locked.
	err := run(ctx, s.useradd, "--create-home", "--home-dir", g.Home, "--shell", "/bin/bash",
		"--user-group", "--password", "*", "--comment", "xvmview test guest", g.User)
	u, lerr := user.Lookup(g.User)
	if lerr == nil {
		s.userCreated = true // ours even if useradd failed half-way: it did not exist before
	}
	if _, serr := os.Lstat(g.Home); serr == nil {
		s.homeCreated = true
	}
	if err != nil {
		return fmt.Errorf("create test guest user: %w", err)
	}
	if lerr != nil {
		return fmt.Errorf("look up test guest user %s after useradd: %w", g.User, lerr)
	}
	if g.UID, err = strconv.Atoi(u.Uid); err != nil {
		return fmt.Errorf("test guest user %s: uid %q: %w", g.User, u.Uid, err)
	}
	if g.GID, err = strconv.Atoi(u.Gid); err != nil {
		return fmt.Errorf("test guest user %s: gid %q: %w", g.User, u.Gid, err)
	}
	if g.UID == 0 {
		return fmt.Errorf("test guest user %s has uid 0", g.User)
	}
	p := filepath.Join(g.Home, ".twmrc")
	if err := os.WriteFile(p, []byte(twmrc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Lchown(p, g.UID, g.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// Close kills every process it started or that runs inside the namespace or
// as the guest user (by PID, with SIGKILL), and removes the veth pair, the
// user with its home and group, Dir and the namespace, in that order (the
// namespace, which reserves index N, goes last). It is idempotent and safe on
// a guest New gave up on half-way. The error lists every step that failed.
func (g *Guest) Close() error {
	if g == nil || g.s == nil {
		return nil
	}
	g.s.closeOnce.Do(func() { g.s.closeErr = g.close() })
	return g.s.closeErr
}

func (g *Guest) close() error {
	s := g.s
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var errs []error
	if s.nsCreated || s.userCreated {
		if err := g.killAll(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.sshd != nil {
		select {
		case <-s.waitDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("sshd (pid %d) of test guest %s did not exit", g.SSHDPID, g.Namespace))
		}
	}
	if s.linkCreated {
		if out, err := command(ctx, s.ip, "link", "del", s.hostLink).CombinedOutput(); err != nil {
			if _, ierr := net.InterfaceByName(s.hostLink); ierr == nil {
				errs = append(errs, fmt.Errorf("delete veth %s: %w: %s", s.hostLink, err, strings.TrimSpace(string(out))))
			}
		}
	}
	if s.userCreated {
		if err := run(ctx, s.userdel, "--remove", g.User); err != nil {
			if _, lerr := user.Lookup(g.User); lerr == nil {
				errs = append(errs, fmt.Errorf("delete test guest user: %w", err))
			}
		}
	}
	if s.homeCreated {
		// userdel -r removes it; this catches a home useradd made before failing.
		if err := os.RemoveAll(g.Home); err != nil {
			errs = append(errs, fmt.Errorf("remove test guest home: %w", err))
		}
	}
	if g.Dir != "" {
		if err := os.RemoveAll(g.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove test guest dir: %w", err))
		}
	}
	if s.nsCreated {
		if err := run(ctx, s.ip, "netns", "del", g.Namespace); err != nil {
			if _, serr := os.Lstat(filepath.Join(netnsDir, g.Namespace)); serr == nil {
				errs = append(errs, fmt.Errorf("delete network namespace: %w", err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close test guest %s: %w", g.Namespace, err)
	}
	return nil
}

// killAll SIGKILLs, until none is left, every live process inside the
// guest's namespace or running as its user. Only processes of this guest can
// be there: the namespace and the user were made by New.
func (g *Guest) killAll(ctx context.Context) error {
	for {
		pids, err := g.ownedPIDs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("processes of test guest %s survived SIGKILL: %v", g.Namespace, pids)
		}
	}
}

func (g *Guest) ownedPIDs() ([]int, error) {
	procs, err := scanProcs()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range procs {
		if p.zombie {
			continue
		}
		inNS := g.s.nsCreated && p.netIno == g.s.nsIno && p.netIno != 0
		asUser := g.s.userCreated && g.UID > 0 && (p.ruid == g.UID || p.euid == g.UID)
		if inNS || asUser {
			pids = append(pids, p.pid)
		}
	}
	return pids, nil
}

// Command returns a command that runs argv inside the guest's network
// namespace as the guest user (real and effective uid and gid, its
// supplementary groups), in its home, with HOME, USER, LOGNAME, SHELL and
// PATH set; append to Env for more. It is for inspecting the guest in tests:
// the product itself talks to the guest over SSH.
func (g *Guest) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := []string{"netns", "exec", g.Namespace, g.s.setpriv,
		"--reuid", strconv.Itoa(g.UID), "--regid", strconv.Itoa(g.GID), "--init-groups", "--"}
	cmd := exec.CommandContext(ctx, g.s.ip, append(args, argv...)...)
	cmd.Dir = g.Home
	cmd.Env = []string{
		"HOME=" + g.Home,
		"USER=" + g.User,
		"LOGNAME=" + g.User,
		"SHELL=/bin/bash",
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=C.UTF-8",
	}
	return cmd
}

// ReadHomeFile reads the file rel (a relative path that stays inside the home
// directory, e.g. ".Xauthority") from the guest's home. Errors wrap the os
// errors, so errors.Is(err, os.ErrNotExist) reports a missing file.
func (g *Guest) ReadHomeFile(rel string) ([]byte, error) {
	if !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("read guest home file %q: not a relative path inside the home directory", rel)
	}
	root, err := os.OpenRoot(g.Home)
	if err != nil {
		return nil, fmt.Errorf("read guest home file: %w", err)
	}
	defer func() { _ = root.Close() }()
	b, err := root.ReadFile(rel)
	if err != nil {
		return nil, fmt.Errorf("read guest home file: %w", err)
	}
	return b, nil
}

// Process is a live process running as the guest user.
type Process struct {
	PID     int
	Cmdline []string // empty for kernel threads and processes that exit while read
}

// Processes returns the live processes whose real or effective uid is the
// guest user's, sorted by PID. It includes sshd's unprivileged
// per-connection processes ("sshd: xvtN@notty") and orphans of dropped
// sessions. It returns an error only if /proc cannot be read.
func (g *Guest) Processes() ([]Process, error) {
	procs, err := scanProcs()
	if err != nil {
		return nil, fmt.Errorf("list test guest processes: %w", err)
	}
	var out []Process
	for _, p := range procs {
		if p.zombie || g.UID <= 0 || (p.ruid != g.UID && p.euid != g.UID) {
			continue
		}
		out = append(out, Process{PID: p.pid, Cmdline: readCmdline(p.pid)})
	}
	return out, nil
}

// KillSessions SIGKILLs sshd's per-connection processes (every sshd process
// below the listener, not the listener itself) and waits until they are
// gone, as a dropped network connection would end them. Commands the
// sessions ran keep running when they had no pty, as they would after a real
// drop; Processes shows them. It returns an error if /proc cannot be read or
// the processes survive closeTimeout.
func (g *Guest) KillSessions() error {
	if g.SSHDPID <= 0 {
		return fmt.Errorf("kill sessions of test guest %s: sshd is not running", g.Namespace)
	}
	procs, err := scanProcs()
	if err != nil {
		return fmt.Errorf("kill sessions of test guest %s: %w", g.Namespace, err)
	}
	want := sshdPath
	if p, err := filepath.EvalSymlinks(sshdPath); err == nil {
		want = p
	}
	var victims []int
	for _, p := range descendants(procs, g.SSHDPID) {
		if exe, err := procfs.Exe(p.pid); err == nil && exe == want {
			victims = append(victims, p.pid)
		}
	}
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	for _, pid := range victims {
		for alive(pid) {
			if err := pause(ctx, 5*time.Millisecond); err != nil {
				return fmt.Errorf("kill sessions of test guest %s: pid %d survived SIGKILL", g.Namespace, pid)
			}
		}
	}
	return nil
}

// SSHDLog returns what sshd wrote to stderr so far (LogLevel VERBOSE; at
// most the last MiB). Start logs it when a test fails.
func (g *Guest) SSHDLog() string { return g.s.sshdLog.String() }

// pause waits d or until ctx is done, whichever comes first; it returns
// ctx.Err() in the latter case. It is the tick of deadline-bounded polls.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// command is exec.CommandContext with a C locale, so error texts are stable.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// run runs a short command and returns an error quoting its argv and output.
func run(ctx context.Context, name string, args ...string) error {
	out, err := command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
