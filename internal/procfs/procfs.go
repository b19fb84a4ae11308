// Package procfs reads process state from Linux's /proc: whether a PID
// still runs and is still the process it was (its start time), its parent,
// its command line, its user, its network namespace and its memory. The
// launcher (stale-session recovery, stop), the test guest, the tests and the
// startup bench all read /proc through it. It uses only the standard
// library.
package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Stat is what /proc/PID/stat says about a process.
type Stat struct {
	PID        int
	Comm       string // field 2, without its parentheses; may hold spaces and ')'
	State      byte   // field 3: R, S, D, Z (zombie), X (dead), T, ...
	PPID       int    // field 4
	PGID       int    // field 5
	StartTicks uint64 // field 22: clock ticks after boot; tells a PID's incarnations apart
}

// Gone reports whether the process has ended: a zombie waiting to be reaped
// (by a parent, or an init that does not) or dead.
func (s Stat) Gone() bool { return s.State == 'Z' || s.State == 'X' }

// ParseStat parses the contents of /proc/PID/stat.
func ParseStat(b []byte) (Stat, error) {
	// The command name may hold spaces and parentheses: it ends at the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return Stat{}, errors.New("no (comm) field")
	}
	var s Stat
	var err error
	if s.PID, err = strconv.Atoi(strings.TrimSpace(string(b[:open]))); err != nil {
		return Stat{}, fmt.Errorf("pid: %w", err)
	}
	s.Comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3; field N is f[N-3].
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("%d fields after comm, want at least 20", len(f))
	}
	// The kernel's states are single letters (R, S, D, Z, T, t, X, I, ...).
	if c := f[0][0]; len(f[0]) != 1 || !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
		return Stat{}, fmt.Errorf("state %q is not a letter", f[0])
	}
	s.State = f[0][0]
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return Stat{}, fmt.Errorf("ppid: %w", err)
	}
	if s.PGID, err = strconv.Atoi(f[2]); err != nil {
		return Stat{}, fmt.Errorf("pgid: %w", err)
	}
	if s.StartTicks, err = strconv.ParseUint(f[19], 10, 64); err != nil {
		return Stat{}, fmt.Errorf("starttime: %w", err)
	}
	return s, nil
}

// ReadStat reads /proc/PID/stat. Errors wrap the os error (fs.ErrNotExist
// when there is no such process) or name the file.
func ReadStat(pid int) (Stat, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return s, nil
}

// Alive reports whether pid is a process that has not ended (Stat.Gone).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	s, err := ReadStat(pid)
	return err == nil && !s.Gone()
}

// Cmdline returns the argv of pid; nil, without error, for a process that
// has none (a kernel thread, a zombie).
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// Exe returns the path of pid's executable.
func Exe(pid int) (string, error) { return os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)) }

// PIDs returns the PIDs of every process, ascending.
func PIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// Children returns the processes whose parent is pid and that have not
// ended, ascending.
func Children(pid int) []int {
	pids, _ := PIDs()
	var out []int
	for _, p := range pids {
		if s, err := ReadStat(p); err == nil && s.PPID == pid && !s.Gone() {
			out = append(out, p)
		}
	}
	return out
}

// StatusField returns the value of the line "name:" of /proc/PID/status,
// trimmed, e.g. StatusField(pid, "NoNewPrivs") = "1".
func StatusField(pid int, name string) (string, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s line in %s", name, path)
}

// UIDs returns the real and effective user IDs of pid (the Uid line of
// /proc/PID/status).
func UIDs(pid int) (real, effective int, err error) {
	v, err := StatusField(pid, "Uid")
	if err != nil {
		return -1, -1, err
	}
	f := strings.Fields(v)
	if len(f) < 2 {
		return -1, -1, fmt.Errorf("pid %d: Uid %q: want real and effective", pid, v)
	}
	r, err1 := strconv.Atoi(f[0])
	e, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil {
		return -1, -1, fmt.Errorf("pid %d: Uid %q: %w", pid, v, err)
	}
	return r, e, nil
}

// Environ returns pid's environment as it was when the program started
// ("NAME=value" each); nil, without error, for one that has none.
func Environ(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || len(b) == 0 {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// Limit returns the soft and hard value of the resource limit called name
// in /proc/PID/limits, e.g. Limit(pid, "Max data size") = "134217728",
// "134217728" (or "unlimited").
func Limit(pid int, name string) (soft, hard string, err error) {
	path := fmt.Sprintf("/proc/%d/limits", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return f[0], f[1], nil
			}
		}
	}
	return "", "", fmt.Errorf("no %q limit in %s", name, path)
}

// NetNS returns the inode of pid's network namespace, which tells
// namespaces apart.
func NetNS(pid int) (uint64, error) {
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no inode for the network namespace")
	}
	return st.Ino, nil
}

// Memory returns pid's resident set size and proportional set size in bytes
// (/proc/PID/smaps_rollup): PSS shares each page out among the processes
// that map it.
func Memory(pid int) (rss, pss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			rss += kb << 10
		case "Pss:":
			pss += kb << 10
		}
	}
	return rss, pss, nil
}

// PeakRSS returns the most memory pid has had resident in its life, in
// bytes (VmHWM of /proc/PID/status).
func PeakRSS(pid int) (int64, error) {
	v, err := StatusField(pid, "VmHWM")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("pid %d: VmHWM %q: want a number of kB", pid, v)
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("pid %d: VmHWM %q: %w", pid, v, err)
	}
	return kb << 10, nil
}

// UnixListening reports whether a unix stream socket in this process's
// network namespace listens on path (/proc/net/unix): whether a socket file
// there has a live server, or is what a dead one left behind.
func UnixListening(path string) (bool, error) {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false, err
	}
	return unixListening(b, path), nil
}

func unixListening(table []byte, path string) bool {
	for _, line := range strings.Split(string(table), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path
		f := strings.Fields(line)
		if len(f) != 8 || f[7] != path {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err == nil && flags&0x10000 != 0 { // __SO_ACCEPTCON: listening
			return true
		}
	}
	return false
}
