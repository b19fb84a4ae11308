package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// alive reports whether pid runs (zombies count as gone: their parent, maybe
// init, reaps them).
func alive(pid int) bool { return procfs.Alive(pid) }

// waitGone polls until none of pids is alive or ctx ends; it returns the
// ones still alive.
func waitGone(ctx context.Context, pids []int) []int {
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || !pause(ctx, 5*time.Millisecond) {
			return left
		}
	}
}

// pause waits d; it returns false when ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stopPIDs sends SIGTERM to pids, waits up to grace, then SIGKILLs the rest
// and waits up to another grace. It returns an error naming survivors.
func stopPIDs(ctx context.Context, pids []int, grace time.Duration) error {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	wctx, cancel := context.WithTimeout(ctx, grace)
	left := waitGone(wctx, pids)
	cancel()
	if len(left) == 0 {
		return nil
	}
	for _, p := range left {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	wctx, cancel = context.WithTimeout(ctx, grace)
	defer cancel()
	if left = waitGone(wctx, left); len(left) > 0 {
		return fmt.Errorf("pids %v survived SIGKILL", left)
	}
	return nil
}

// guestProcs describes the guest user's live processes, one per line.
func guestProcs(g *testguest.Guest) ([]testguest.Process, string, error) {
	ps, err := g.Processes()
	if err != nil {
		return nil, "", err
	}
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%d %q; ", p.PID, p.Cmdline)
	}
	return ps, strings.TrimSuffix(b.String(), "; "), nil
}

// waitGuestIdle waits up to wait for the guest user to have no processes
// (sshd's per-connection process ends a moment after the client leaves).
// It returns the processes still there, described.
func waitGuestIdle(ctx context.Context, g *testguest.Guest, wait time.Duration) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ps, desc, err := guestProcs(g)
		if err != nil {
			return "", err
		}
		if len(ps) == 0 || !pause(wctx, 10*time.Millisecond) {
			return desc, nil
		}
	}
}

// killGuest ends every process of the guest user, by PID (the guest and
// its user are the bench's own).
func killGuest(ctx context.Context, g *testguest.Guest) error {
	ps, _, err := guestProcs(g)
	if err != nil {
		return err
	}
	pids := make([]int, len(ps))
	for i, p := range ps {
		pids[i] = p.PID
	}
	if err := stopPIDs(ctx, pids, 3*time.Second); err != nil {
		return fmt.Errorf("end guest processes: %w", err)
	}
	return nil
}

// guestEntries returns the entries of the guest user's ~/.Xauthority (none
// when it does not exist). Their Data is never printed.
func guestEntries(g *testguest.Guest) ([]xauth.Entry, error) {
	b, err := g.ReadHomeFile(".Xauthority")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	es, err := xauth.Read(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse the guest's ~/.Xauthority: %w", err)
	}
	return es, nil
}

// guestXauthRemove runs `xauth remove DISPLAY` as the guest user.
func guestXauthRemove(ctx context.Context, g *testguest.Guest, display string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := g.Command(cctx, "xauth", "-q", "remove", display).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xauth remove %s on the guest: %w: %s", display, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// displayGone reports whether display :n has neither a socket nor a lock file.
func displayGone(n int) bool {
	for _, p := range []string{socketPath(n), fmt.Sprintf("/tmp/.X%d-lock", n)} {
		if _, err := os.Lstat(p); err == nil {
			return false
		}
	}
	return true
}

func socketPath(n int) string { return fmt.Sprintf("/tmp/.X11-unix/X%d", n) }

// socketInode returns the inode of display :n's socket, 0 if there is none.
// Other programs on the machine may start X servers: a socket with another
// inode after a session is theirs, not a leftover.
func socketInode(n int) uint64 {
	fi, err := os.Lstat(socketPath(n))
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// memUse is the memory of a launcher's own host processes at the app's
// first window: RSS counts shared pages (libc, libcrypto) in full for each
// process, PSS shares them out among all their users. Xephyr, the same
// program in every launcher, is left out.
type memUse struct {
	rss, pss int64 // bytes
	procs    int
}

// launcherMemory adds up root and its descendants except Xephyr.
func launcherMemory(root int) memUse {
	var m memUse
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		queue = append(queue, procfs.Children(pid)...)
		if st, err := procfs.ReadStat(pid); err != nil || st.Comm == "Xephyr" {
			continue
		}
		rss, pss, err := procfs.Memory(pid)
		if err != nil {
			continue // gone meanwhile
		}
		m.procs++
		m.rss += rss
		m.pss += pss
	}
	return m
}
