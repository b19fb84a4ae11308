package testguest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// procInfo is what this package needs to know about a process from /proc.
type procInfo struct {
	pid, ppid  int
	ruid, euid int
	zombie     bool   // state Z or X: gone but not reaped (by PID 1, say)
	netIno     uint64 // inode of its network namespace; 0 if unreadable
}

// scanProcs reads every process from /proc, sorted by PID. Processes that
// exit while being read are skipped.
func scanProcs() ([]procInfo, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	var procs []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, ok := readProc(pid)
		if ok {
			procs = append(procs, p)
		}
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].pid < procs[j].pid })
	return procs, nil
}

// readProc parses /proc/PID/status; ok is false if the process is gone.
func readProc(pid int) (p procInfo, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procInfo{}, false
	}
	p = procInfo{pid: pid, ruid: -1, euid: -1}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		switch key {
		case "State":
			p.zombie = f[0] == "Z" || f[0] == "X"
		case "PPid":
			p.ppid, _ = strconv.Atoi(f[0])
		case "Uid":
			p.ruid, _ = strconv.Atoi(f[0])
			if len(f) > 1 {
				p.euid, _ = strconv.Atoi(f[1])
			}
		}
	}
	if fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			p.netIno = st.Ino
		}
	}
	return p, true
}

// readCmdline returns the argv of pid, or nil if it is gone or has none.
func readCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// descendants returns the live descendants of root (not root itself).
func descendants(procs []procInfo, root int) []procInfo {
	children := map[int][]procInfo{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []procInfo
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if !c.zombie {
				out = append(out, c)
			}
			queue = append(queue, c.pid)
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	p, ok := readProc(pid)
	return ok && !p.zombie
}
