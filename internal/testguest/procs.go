package testguest

import "github.com/xvmview/xvmview/internal/procfs"

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
	pids, err := procfs.PIDs()
	if err != nil {
		return nil, err
	}
	var procs []procInfo
	for _, pid := range pids {
		if p, ok := readProc(pid); ok {
			procs = append(procs, p)
		}
	}
	return procs, nil
}

// readProc reads what procInfo holds; ok is false if the process is gone.
func readProc(pid int) (p procInfo, ok bool) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return procInfo{}, false
	}
	p = procInfo{pid: pid, ppid: st.PPID, zombie: st.Gone()}
	p.ruid, p.euid, _ = procfs.UIDs(pid)
	p.netIno, _ = procfs.NetNS(pid)
	return p, true
}

// readCmdline returns the argv of pid, or nil if it is gone or has none.
func readCmdline(pid int) []string {
	argv, _ := procfs.Cmdline(pid)
	return argv
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
