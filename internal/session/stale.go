package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/procfs"
)

// staleAge protects a session directory that a concurrent launch has just
// created and not yet described: only older ones without a state are stale.
// The same age marks a cleanup claim whose cleaner died.
const staleAge = time.Minute

// claimPrefix names a stale session directory that one launch has claimed
// for cleaning (ReadStates skips dot-directories), so that two launches
// never clean the same session.
const claimPrefix = ".clean-"

// CleanStale finds sessions whose launcher is gone (killed, crashed, the
// machine lost power) and undoes what they left: their Xephyr, their guest
// ~/.Xauthority entry (recorded only by versions that wrote the cookie there;
// a session's own Xauthority file now goes with its keeper's channel), their
// directory. What it cannot undo now (guest unreachable) stays on record for
// the next try. A guest entry is left alone when a live session uses the same
// guest display now. Each action is
// reported through notice.
func CleanStale(ctx context.Context, root string, notice func(string, ...any)) {
	releaseAbandonedClaims(root)
	states, err := ReadStates(root)
	if err != nil {
		notice("look for stale sessions: %v", err)
		return
	}
	var live []State
	for _, s := range states {
		if s.Alive() {
			live = append(live, s)
		}
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
		claimed := filepath.Join(root, claimPrefix+s.ID)
		if os.Rename(dir, claimed) != nil {
			continue // another launch got there first
		}
		// The claim's age is its directory's mtime: refresh it.
		_ = os.WriteFile(filepath.Join(claimed, ".claim"), nil, 0o600)
		if err := cleanOne(ctx, dir, claimed, s, live); err != nil {
			_ = os.Remove(filepath.Join(claimed, ".claim"))
			_ = os.Rename(claimed, dir) // back on record for the next try
			notice("stale session %s (profile %s): %v", s.ID, s.Profile, err)
			continue
		}
		notice("cleaned up after session %s (profile %s, display :%d) whose launcher had died", s.ID, s.Profile, s.Display)
	}
}

// releaseAbandonedClaims puts back claims whose cleaner died mid-way.
func releaseAbandonedClaims(root string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		id, ok := strings.CutPrefix(e.Name(), claimPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		p := filepath.Join(root, e.Name())
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > staleAge {
			_ = os.Remove(filepath.Join(p, ".claim"))
			_ = os.Rename(p, filepath.Join(root, id))
		}
	}
}

// cleanOne undoes a stale session: dir is where it lived (its Xephyr's argv
// names files there), claimed where its directory is now.
func cleanOne(ctx context.Context, dir, claimed string, s State, live []State) error {
	if s.XephyrPID > 0 {
		if err := endXephyr(ctx, s.XephyrPID, filepath.Join(dir, "server.xauth")); err != nil {
			return fmt.Errorf("end Xephyr pid %d: %w", s.XephyrPID, err)
		}
	}
	if s.GuestEntry && s.Guest != nil && !displayInUse(s, live) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := removeGuestDisplay(cctx, nil, *s.Guest, s.GuestDisplay); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(claimed); err != nil {
		return fmt.Errorf("remove %s: %w", claimed, err)
	}
	return nil
}

// displayInUse reports whether a live session uses s's guest display on the
// same guest account: its entry there is that session's now.
func displayInUse(s State, live []State) bool {
	for _, l := range live {
		if l.Guest != nil && l.GuestDisplay == s.GuestDisplay &&
			l.Guest.HostName == s.Guest.HostName && l.Guest.Port == s.Guest.Port && l.Guest.User == s.Guest.User {
			return true
		}
	}
	return false
}

// endXephyr ends pid if it is an X server started with authFile (a PID
// reused by anything else is left alone): SIGTERM, up to 3 s, then SIGKILL
// and a short wait. The process is held by a pidfd from the check on, so
// the signals cannot reach a process that took over the PID meanwhile.
func endXephyr(ctx context.Context, pid int, authFile string) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	defer p.Release()
	argv, err := procfs.Cmdline(pid)
	if err != nil || !slices.Contains(argv, authFile) || !procfs.Alive(pid) {
		return nil // gone, or not ours
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return nil // gone
	}
	if waitGone(ctx, p, pid, 3*time.Second) {
		return nil
	}
	if err := p.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if !waitGone(ctx, p, pid, time.Second) {
		return fmt.Errorf("still running after SIGKILL")
	}
	return nil
}

// waitGone polls until the process has exited (or is a zombie), up to d.
func waitGone(ctx context.Context, p *os.Process, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.Signal(syscall.Signal(0)) != nil || !procfs.Alive(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
