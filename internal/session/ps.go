package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/procfs"
)

// StopTimeout bounds how long Stop waits for a session's teardown.
const StopTimeout = 15 * time.Second

// Live returns the sessions under root whose launcher still runs, oldest
// first, and the sessions whose launcher is gone (stale: CleanStale, which
// every run starts in the background, removes them). A directory that a launch has just
// created and not yet described is in neither list.
//
// It returns an error when root exists but cannot be read.
func Live(root string) (live, stale []State, err error) {
	states, err := ReadStates(root)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range states {
		switch {
		case s.Alive() && procfs.Alive(s.LauncherPID):
			live = append(live, s)
		case s.LauncherPID != 0 || old(filepath.Join(root, s.ID)):
			stale = append(stale, s)
		}
	}
	byStart := func(a, b State) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	}
	slices.SortFunc(live, byStart)
	slices.SortFunc(stale, byStart)
	return live, stale, nil
}

// old reports whether the directory without a state is older than
// staleAge, as CleanStale decides.
func old(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && time.Since(fi.ModTime()) >= staleAge
}

// NotRunningError means the session's launcher is no longer running: it
// ended, or died and left its directory for the next run to clean.
type NotRunningError struct {
	ID  string
	PID int
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("session %s is not running: its launcher (pid %d) is gone", e.ID, e.PID)
}

// IncompleteError means the launcher ended but left its session directory:
// its teardown could not undo everything, and the next run will retry.
type IncompleteError struct {
	ID  string
	Dir string
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("session %s ended but its teardown was incomplete: %s is still there", e.ID, e.Dir)
}

// Stop ends the running session st under root with the same teardown as a
// normal exit: it sends SIGTERM to the launcher, after checking that the
// PID still belongs to the launcher that recorded st (start time; a reused
// PID is left alone), and waits until the launcher has removed the session
// directory and exited, at most StopTimeout (plus a VM shutdown's grace
// when the session may shut its VM down) or until ctx ends.
//
// It returns nil when the session is gone (also when it ended by itself in
// the meantime), *NotRunningError when the launcher was already gone but its
// directory is left, *IncompleteError when the launcher exited and left its
// directory, and an error naming the session and PID when the wait timed out
// or ctx ended.
func Stop(ctx context.Context, root string, st State) error {
	dir := filepath.Join(root, st.ID)
	if st.ID == "" || st.ID != filepath.Base(st.ID) || st.ID == "." || st.ID == ".." {
		return fmt.Errorf("invalid session id %q", st.ID)
	}
	// On Linux FindProcess holds a pidfd: checked below to be the launcher,
	// it cannot come to name another process before the signal.
	p, err := os.FindProcess(st.LauncherPID)
	if err != nil || st.LauncherPID <= 0 {
		return stoppedOr(dir, st)
	}
	defer p.Release()
	if !st.Alive() || !procfs.Alive(st.LauncherPID) {
		return stoppedOr(dir, st)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return stoppedOr(dir, st)
		}
		return fmt.Errorf("stop session %s: signal launcher pid %d: %w", st.ID, st.LauncherPID, err)
	}

	ctx, cancel := context.WithTimeout(ctx, StopTimeout+st.VM.shutdownTime())
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := os.Stat(dir)
		gone := errors.Is(err, fs.ErrNotExist)
		running := st.Alive() && procfs.Alive(st.LauncherPID)
		switch {
		case gone && !running:
			return nil
		case !running:
			// Teardown removes the directory before the launcher exits; a
			// directory left after it holds what could not be undone.
			return &IncompleteError{ID: st.ID, Dir: dir}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop session %s: launcher pid %d still running after SIGTERM: %w", st.ID, st.LauncherPID, ctx.Err())
		case <-tick.C:
		}
	}
}

// stoppedOr returns nil when dir is gone (the session ended), else a
// *NotRunningError.
func stoppedOr(dir string, st State) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return &NotRunningError{ID: st.ID, PID: st.LauncherPID}
}
