// Package memcg puts one process under a memory limit that the kernel
// enforces on the memory it really uses (anonymous and shared memory, page
// cache, kernel memory, swap): a systemd user scope with MemoryMax when the
// user's systemd answers on the session bus, else a memory cgroup of the
// launcher's own (a cgroup v2 leaf in a subtree the user may write, or a
// leaf of the cgroup v1 memory controller when that is writable). It is
// what xephyr.Start uses besides RLIMIT_DATA, which stays as the backstop.
package memcg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mechanism says what enforces a Limit.
type Mechanism int

// The mechanisms, in the order Apply tries them.
const (
	None     Mechanism = iota // nothing: RLIMIT_DATA alone
	Scope                     // a systemd user scope (MemoryMax, MemorySwapMax=0)
	CgroupV2                  // a cgroup v2 leaf of ours (memory.max, memory.swap.max=0)
	CgroupV1                  // a cgroup v1 memory leaf of ours (memory.limit_in_bytes, memory.memsw.limit_in_bytes)
)

func (m Mechanism) String() string {
	switch m {
	case Scope:
		return "systemd user scope"
	case CgroupV2:
		return "cgroup v2"
	case CgroupV1:
		return "cgroup v1 memory controller"
	default:
		return "none"
	}
}

// Config says where Apply looks. The zero value is not usable: Name is
// required.
type Config struct {
	// Name is the scope's and the leaf's name, e.g. "xvmview-xephyr-ID":
	// the scope is Name+".scope", the cgroup leaf Name. Letters, digits,
	// '-', '_' and '.', at most 100 bytes.
	Name string
	// Env is where the user's session bus is found
	// (DBUS_SESSION_BUS_ADDRESS, else XDG_RUNTIME_DIR/bus), and systemd's
	// private socket (XDG_RUNTIME_DIR/systemd/private) when the bus is not
	// there. nil means the launcher's environment.
	Env []string
	// ScopeTimeout bounds the whole systemd attempt (connect, call, job);
	// 0 = DefaultScopeTimeout. Past it Apply goes on to a cgroup.
	ScopeTimeout time.Duration
	// NoScope and NoCgroup leave a mechanism out.
	NoScope, NoCgroup bool
	// Proc is where /proc is ("" = "/proc"): self/mountinfo and
	// self/cgroup say where the launcher's cgroups are; PID/cgroup where
	// the process went.
	Proc string

	// mkdir makes a cgroup directory (os.Mkdir 0755): tests on a fake
	// tree make the control files the kernel would.
	mkdir func(string) error
}

// DefaultScopeTimeout bounds the systemd attempt: a user manager answers
// in milliseconds; one that does not answer within this costs the launch
// no more.
const DefaultScopeTimeout = 2 * time.Second

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

func (c Config) proc() string {
	if c.Proc == "" {
		return "/proc"
	}
	return c.Proc
}

// Limit is what Apply did.
type Limit struct {
	Mechanism Mechanism
	Bytes     int64
	// Unit is the systemd scope when one was made (also when it turned
	// out not to limit memory and a cgroup was used instead).
	Unit string
	// Path is the cgroup directory that holds the process and its limit:
	// the scope's, or the leaf Apply made (which Remove removes).
	Path string
	// Skipped says why each mechanism tried before this one was not used.
	Skipped []string
}

// Owned reports whether Path is a leaf Apply made, which Remove removes
// (a scope's cgroup is systemd's: it collects it once empty).
func (l *Limit) Owned() bool {
	return l != nil && (l.Mechanism == CgroupV1 || l.Mechanism == CgroupV2) && l.Path != ""
}

// String says in one line what limits the process, e.g. "cgroup v1 memory
// controller /sys/fs/cgroup/memory/x/xvmview-xephyr-1 (memory.limit_in_bytes
// 383 MiB); not used: systemd user scope: no session bus".
func (l *Limit) String() string {
	var b strings.Builder
	switch l.Mechanism {
	case Scope:
		fmt.Fprintf(&b, "systemd user scope %s (MemoryMax %d MiB, no swap) at %s", l.Unit, l.Bytes>>20, l.Path)
	case CgroupV2:
		fmt.Fprintf(&b, "cgroup v2 %s (memory.max %d MiB, memory.swap.max 0)", l.Path, l.Bytes>>20)
	case CgroupV1:
		fmt.Fprintf(&b, "cgroup v1 memory controller %s (memory.limit_in_bytes %d MiB)", l.Path, l.Bytes>>20)
	default:
		b.WriteString("no cgroup")
	}
	if len(l.Skipped) > 0 {
		b.WriteString("; not used: ")
		b.WriteString(strings.Join(l.Skipped, "; "))
	}
	return b.String()
}

// Apply puts pid under a limit of n bytes by the first mechanism that works
// (Scope, CgroupV2, CgroupV1) and returns what it did; Mechanism None, with
// the reasons in Skipped, when none did. It never fails otherwise: the
// caller's RLIMIT_DATA is the backstop. An invalid Config.Name is an error.
// ctx bounds it, as does Config.ScopeTimeout the systemd attempt.
func Apply(ctx context.Context, pid int, n int64, c Config) (*Limit, error) {
	if !nameRE.MatchString(c.Name) {
		return nil, fmt.Errorf("memory cgroup name %q: want letters, digits, '-', '_' or '.'", c.Name)
	}
	l := &Limit{Bytes: n}
	if c.NoScope {
		l.Skipped = append(l.Skipped, "systemd user scope: turned off")
	} else {
		unit, err := startScope(ctx, pid, n, c)
		if err == nil {
			l.Unit = unit
			path, err := checkScope(c, pid, unit, n)
			if err == nil {
				l.Mechanism, l.Path = Scope, path
				return l, nil
			}
			l.Skipped = append(l.Skipped, "systemd user scope "+unit+": "+err.Error())
		} else {
			l.Skipped = append(l.Skipped, "systemd user scope: "+err.Error())
		}
	}
	if c.NoCgroup {
		l.Skipped = append(l.Skipped, "cgroup: turned off")
		return l, nil
	}
	h, err := readHierarchies(c.proc())
	if err != nil {
		l.Skipped = append(l.Skipped, "cgroup: "+err.Error())
		return l, nil
	}
	h.mkdir = c.mkdir
	if h.mkdir == nil {
		h.mkdir = func(p string) error { return os.Mkdir(p, 0o755) }
	}
	if path, err := h.v2Leaf(c.Name, pid, n); err == nil {
		l.Mechanism, l.Path = CgroupV2, path
		return l, nil
	} else {
		l.Skipped = append(l.Skipped, "cgroup v2: "+err.Error())
	}
	if path, err := h.v1Leaf(c.Name, pid, n); err == nil {
		l.Mechanism, l.Path = CgroupV1, path
		return l, nil
	} else {
		l.Skipped = append(l.Skipped, "cgroup v1: "+err.Error())
	}
	return l, nil
}

// Remove removes the leaf Apply made, once the processes in it have
// exited: it retries while the kernel still counts one (EBUSY), until ctx
// ends or 2 s have passed. A scope is systemd's (CollectMode
// inactive-or-failed: it goes once empty) and None has nothing: nil.
func (l *Limit) Remove(ctx context.Context) error {
	if !l.Owned() {
		return nil
	}
	return removeLeaf(ctx, l.Path)
}

// RemoveStale removes a leaf that a launcher which died left behind (its
// path from the session's record). The directory must be named like one
// Apply makes (base name starting with prefix); a missing one is fine.
func RemoveStale(ctx context.Context, path, prefix string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || !strings.HasPrefix(filepath.Base(path), prefix) || prefix == "" {
		return fmt.Errorf("remove memory cgroup %q: not a cgroup leaf of this program", path)
	}
	return removeLeaf(ctx, path)
}

func removeLeaf(ctx context.Context, path string) error {
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := unix.Rmdir(path)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("remove memory cgroup %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove memory cgroup %s: processes still in it: %w", path, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("remove memory cgroup %s: processes still in it after 2s", path)
		case <-tick.C:
		}
	}
}

// hierarchies is where the launcher's cgroups are.
type hierarchies struct {
	v2Dir string // the launcher's cgroup v2 directory; "" if none is mounted
	v2Top string // the cgroup2 mount point it is under
	v1Dir string // the launcher's cgroup v1 memory directory; "" if none is mounted
	mkdir func(string) error
}

// mount is one cgroup mount from mountinfo.
type mount struct {
	root, point string
	v2          bool
	memory      bool // v1: carries the memory controller
}

// readHierarchies reads PROC/self/mountinfo and PROC/self/cgroup.
func readHierarchies(proc string) (hierarchies, error) {
	var h hierarchies
	mounts, err := readMounts(filepath.Join(proc, "self", "mountinfo"))
	if err != nil {
		return h, err
	}
	groups, err := readCgroups(filepath.Join(proc, "self", "cgroup"))
	if err != nil {
		return h, err
	}
	for _, g := range groups {
		for _, m := range mounts {
			var ok bool
			switch {
			case g.v2 && m.v2:
				ok = h.v2Dir == ""
			case !g.v2 && !m.v2 && m.memory && g.memory:
				ok = h.v1Dir == ""
			}
			if !ok {
				continue
			}
			dir, found := under(m, g.path)
			if !found {
				continue
			}
			if m.v2 {
				h.v2Dir, h.v2Top = dir, m.point
			} else {
				h.v1Dir = dir
			}
		}
	}
	return h, nil
}

// under maps a cgroup path to its directory in mount m; false when it is
// not in the mounted subtree (or would leave the mount point).
func under(m mount, path string) (string, bool) {
	rest := path
	if m.root != "/" {
		var ok bool
		rest, ok = strings.CutPrefix(path, m.root)
		if !ok || rest != "" && rest[0] != '/' {
			return "", false
		}
	}
	dir := filepath.Join(m.point, rest)
	if dir != filepath.Clean(m.point) && !strings.HasPrefix(dir, strings.TrimSuffix(filepath.Clean(m.point), "/")+"/") {
		return "", false
	}
	return dir, true
}

func readMounts(file string) ([]mount, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseMounts(string(b)), nil
}

// parseMounts reads the cgroup mounts of a /proc/PID/mountinfo: cgroup2,
// and cgroup v1 hierarchies that carry the memory controller.
func parseMounts(s string) []mount {
	var out []mount
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		m := mount{root: unescape(f[3]), point: unescape(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			if sep+3 < len(f) {
				for _, o := range strings.Split(f[sep+3], ",") {
					m.memory = m.memory || o == "memory"
				}
			}
			if !m.memory {
				continue
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type cgroupLine struct {
	v2, memory bool
	path       string
}

// readCgroups parses a /proc/PID/cgroup file.
func readCgroups(file string) ([]cgroupLine, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseCgroups(string(b)), nil
}

func parseCgroups(s string) []cgroupLine {
	var out []cgroupLine
	for _, l := range strings.Split(s, "\n") {
		id, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		c := cgroupLine{path: path, v2: id == "0" && ctrls == ""}
		for _, n := range strings.Split(ctrls, ",") {
			c.memory = c.memory || n == "memory"
		}
		out = append(out, c)
	}
	return out
}

// v2Leaf makes NAME with memory.max n and memory.swap.max 0 in the first
// cgroup v2 directory that hands the memory controller to its children and
// that this user may write: the launcher's own (a cgroup with processes
// cannot, unless it is a root), else its parent (a delegated subtree), and
// moves pid into it.
func (h hierarchies) v2Leaf(name string, pid int, n int64) (string, error) {
	if h.v2Dir == "" {
		return "", errors.New("no cgroup2 hierarchy mounted")
	}
	var why []string
	for _, dir := range h.v2Candidates() {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		if !hasWord(string(b), "memory") {
			why = append(why, dir+" does not hand the memory controller to its children")
			continue
		}
		leaf := filepath.Join(dir, name)
		err = makeLeaf(h.mkdir, leaf, pid, []limitFile{
			{"memory.max", strconv.FormatInt(n, 10), true},
			{"memory.swap.max", "0", false},
		})
		if err == nil {
			return leaf, nil
		}
		why = append(why, err.Error())
	}
	return "", errors.New(strings.Join(why, "; "))
}

// v2Candidates are the launcher's cgroup v2 directory and its parent
// within the mount.
func (h hierarchies) v2Candidates() []string {
	if h.v2Dir == "" {
		return nil
	}
	if h.v2Dir == h.v2Top {
		return []string{h.v2Dir}
	}
	return []string{h.v2Dir, filepath.Dir(h.v2Dir)}
}

// v1Leaf makes NAME under the launcher's own cgroup v1 memory directory,
// with memory.limit_in_bytes n and memory.memsw.limit_in_bytes n (no swap
// beyond the limit, where the kernel accounts swap), and moves pid into it.
func (h hierarchies) v1Leaf(name string, pid int, n int64) (string, error) {
	if h.v1Dir == "" {
		return "", errors.New("no cgroup v1 memory controller mounted")
	}
	leaf := filepath.Join(h.v1Dir, name)
	v := strconv.FormatInt(n, 10)
	if err := makeLeaf(h.mkdir, leaf, pid, []limitFile{
		{"memory.limit_in_bytes", v, true},
		{"memory.memsw.limit_in_bytes", v, false},
	}); err != nil {
		return "", err
	}
	return leaf, nil
}

type limitFile struct {
	name, value string
	required    bool // else a missing file (the kernel does not account it) is fine
}

// makeLeaf creates leaf (it must not exist), writes the limits, reads the
// required one back, and moves pid into it; on failure it removes leaf.
func makeLeaf(mkdir func(string) error, leaf string, pid int, limits []limitFile) (err error) {
	if err := mkdir(leaf); err != nil {
		return fmt.Errorf("create %s: %w", leaf, cleanErr(err))
	}
	defer func() {
		if err != nil {
			_ = unix.Rmdir(leaf)
		}
	}()
	for _, f := range limits {
		p := filepath.Join(leaf, f.name)
		if werr := writeFile(p, f.value); werr != nil {
			if !f.required && errors.Is(werr, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("write %s: %w", p, cleanErr(werr))
		}
		if f.required {
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				return fmt.Errorf("read %s back: %w", p, cleanErr(rerr))
			}
			if got := strings.TrimSpace(string(b)); got != f.value {
				return fmt.Errorf("%s reads %s after writing %s", p, got, f.value)
			}
		}
	}
	p := filepath.Join(leaf, "cgroup.procs")
	if err := writeFile(p, strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("move pid %d into %s: %w", pid, leaf, cleanErr(err))
	}
	return nil
}

// writeFile writes s to an existing file (a cgroup control file) in one
// write: the kernel takes each write as one value.
func writeFile(p, s string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// cleanErr drops the *PathError around err: the callers name the path.
func cleanErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func hasWord(s, w string) bool { return slices.Contains(strings.Fields(s), w) }

// checkScope finds where systemd put pid (the line of PROC/PID/cgroup that
// ends in /UNIT) and checks that the memory controller enforces n there:
// memory.max (v2) or memory.limit_in_bytes (v1) reads n. A scope in a
// hierarchy without the memory controller (systemd on cgroup v1, or a user
// manager the controller is not delegated to) limits nothing.
func checkScope(c Config, pid int, unit string, n int64) (string, error) {
	proc := c.proc()
	groups, err := readCgroups(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", fmt.Errorf("where is pid %d: %w", pid, err)
	}
	mounts, err := readMounts(filepath.Join(proc, "self", "mountinfo"))
	if err != nil {
		return "", err
	}
	seen := false
	for _, g := range groups {
		if !strings.HasSuffix(g.path, "/"+unit) {
			continue
		}
		seen = true
		for _, m := range mounts {
			if m.v2 != g.v2 || !m.v2 && !g.memory {
				continue
			}
			dir, ok := under(m, g.path)
			if !ok {
				continue
			}
			file := "memory.limit_in_bytes"
			if m.v2 {
				file = "memory.max"
			}
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				continue
			}
			if got := strings.TrimSpace(string(b)); got != strconv.FormatInt(n, 10) {
				return "", fmt.Errorf("%s reads %s, not %d", filepath.Join(dir, file), got, n)
			}
			return dir, nil
		}
	}
	if !seen {
		return "", fmt.Errorf("systemd reported the job done but pid %d is not in it", pid)
	}
	return "", errors.New("the scope has no memory controller (not delegated to the user's systemd, or cgroup v1): MemoryMax limits nothing there")
}

// Probe says, without changing anything, what Apply would try for c:
// whether a way to the user's systemd is there and which cgroup directory
// this user could make a leaf in. It is for --dry-run: whether systemd
// answers is known only when Apply asks. Each string is one candidate, in
// the order Apply tries them; none: RLIMIT_DATA alone.
func Probe(c Config) []string {
	var parts []string
	if !c.NoScope {
		if addrs, err := busAddrs(c.Env); err == nil {
			parts = append(parts, "a systemd user scope if the user's systemd answers on the "+addrs[0].what)
		}
	}
	if !c.NoCgroup {
		if h, err := readHierarchies(c.proc()); err == nil {
			for _, dir := range h.v2Candidates() {
				b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
				if err == nil && hasWord(string(b), "memory") && unix.Access(dir, unix.W_OK) == nil {
					parts = append(parts, "a cgroup v2 leaf in "+dir)
					break
				}
			}
			if h.v1Dir != "" && unix.Access(h.v1Dir, unix.W_OK) == nil {
				parts = append(parts, "a cgroup v1 memory leaf in "+h.v1Dir)
			}
		}
	}
	return parts
}
