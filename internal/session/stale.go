package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
)

// staleAge protects a session directory that a concurrent launch has just
// created and not yet described: only older ones without a state are stale.
const staleAge = time.Minute

// CleanStale finds sessions whose launcher is gone (killed, crashed, the
// machine lost power) and undoes what they left: their Xephyr, their guest
// Xauthority entry, their directory. What it cannot undo now (guest
// unreachable) stays on record for the next try. Each action is reported
// through notice.
func CleanStale(ctx context.Context, root string, notice func(string, ...any)) {
	states, err := ReadStates(root)
	if err != nil {
		notice("look for stale sessions: %v", err)
		return
	}
	for _, s := range states {
		if s.Alive() {
			continue
		}
		dir := filepath.Join(root, s.ID)
		if s.LauncherPID == 0 {
			if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < staleAge {
				continue
			}
		}
		if err := cleanOne(ctx, dir, s); err != nil {
			notice("stale session %s (profile %s): %v", s.ID, s.Profile, err)
			continue
		}
		notice("cleaned up after session %s (profile %s, display :%d) whose launcher had died", s.ID, s.Profile, s.Display)
	}
}

func cleanOne(ctx context.Context, dir string, s State) error {
	if s.XephyrPID > 0 && ownsXephyr(s.XephyrPID, dir) {
		if err := endPID(ctx, s.XephyrPID); err != nil {
			return fmt.Errorf("end Xephyr pid %d: %w", s.XephyrPID, err)
		}
	}
	if s.GuestEntry && s.Guest != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := guest.Dial(cctx, *s.Guest, guest.DialOptions{})
		if err != nil {
			return fmt.Errorf("remove guest Xauthority entry %s: %w", s.GuestDisplay, err)
		}
		defer c.Close()
		var stderr bytes.Buffer
		if err := c.Run(cctx, guestXauthRm(s.GuestDisplay), nil, io.Discard, &stderr); err != nil {
			return fmt.Errorf("remove guest Xauthority entry %s on %s: %w", s.GuestDisplay, s.Guest.HostName, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// ownsXephyr reports whether pid is an X server started for the session in
// dir: its argv names that session's -auth file. A PID reused by anything
// else is left alone.
func ownsXephyr(pid int, dir string) bool {
	argv, err := procCmdline(pid)
	if err != nil {
		return false
	}
	return slices.Contains(argv, filepath.Join(dir, "server.xauth"))
}

// endPID sends SIGTERM, waits up to 3 s, then SIGKILL.
func endPID(ctx context.Context, pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	deadline := time.Now().Add(3 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil || zombie(pid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}
