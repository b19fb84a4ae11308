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

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/memcg"
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

// MaxCleanupTries is how many times a stale session's cleanup is tried. A
// record whose cleanup failed that often (its guest unreachable, or its
// xauth failing) is left alone: FailedCleanups returns it for `xvmview ps`
// to report, and CleanSession retries it when the user asks.
const MaxCleanupTries = 3

// staleGuestTimeout bounds the removal of one stale guest entry (login and
// xauth); staleTimeout bounds a launch's whole background cleanup.
const (
	staleGuestTimeout = 10 * time.Second
	staleTimeout      = 30 * time.Second
)

// CleanStale finds sessions whose launcher is gone (killed, crashed, the
// machine lost power) and undoes what they left: their Xephyr, their guest
// ~/.Xauthority entry (recorded only by versions that wrote the cookie there;
// a session's own Xauthority file now goes with its keeper's channel), their
// directory. What it cannot undo now (guest unreachable) stays on record with
// the number of tries, for the next try; after MaxCleanupTries it is no longer
// tried. A guest entry is left alone when a live session uses the same guest
// display now. Each action is reported through notice, in text made safe with
// guesttext (the guest's xauth may say anything).
//
// Run calls it in the background of every launch, with its own deadline,
// its notices going to the session log only: a stale session on a hostile
// guest can neither delay nor print into the launch.
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
		if s.Alive() || s.CleanupTries >= MaxCleanupTries {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		dir := filepath.Join(root, s.ID)
		if s.LauncherPID == 0 {
			if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < staleAge {
				continue
			}
		}
		switch tries, err := cleanClaimed(ctx, root, s, live); {
		case tries == 0 && err != nil:
			notice("stale session %s (profile %s): %v", s.ID, guesttext.Line(s.Profile), err)
		case err != nil:
			notice("stale session %s (profile %s), try %d of %d: %v", s.ID, guesttext.Line(s.Profile), tries, MaxCleanupTries, err)
		case tries > 0:
			notice("cleaned up after session %s (profile %s, display :%d) whose launcher had died", s.ID, guesttext.Line(s.Profile), s.Display)
		}
	}
}

// cleanClaimed claims s's directory, counts the try in its state and cleans
// it up; a failure puts it back on record with the reason, made visible with
// guesttext.Line. tries is the count of tries made so far, 0 when none was
// made: another launch had claimed it, or the count could not be written.
func cleanClaimed(ctx context.Context, root string, s State, live []State) (tries int, err error) {
	dir := filepath.Join(root, s.ID)
	claimed := filepath.Join(root, claimPrefix+s.ID)
	if os.Rename(dir, claimed) != nil {
		return 0, nil // another launch got there first
	}
	// The claim's age is its directory's mtime: refresh it.
	_ = os.WriteFile(filepath.Join(claimed, ".claim"), nil, 0o600)
	release := func() {
		_ = os.Remove(filepath.Join(claimed, ".claim"))
		_ = os.Rename(claimed, dir) // back on record for the next try
	}
	// A try that cannot be counted is not made: the count bounds them.
	s.CleanupTries++
	rec := &sessionDir{Root: root, ID: s.ID, Path: claimed}
	if err := rec.writeState(&s); err != nil {
		release()
		return 0, err
	}
	if err := cleanOne(ctx, dir, claimed, s, live); err != nil {
		s.CleanupError = guesttext.Line(err.Error())
		_ = rec.writeState(&s)
		release()
		return s.CleanupTries, errors.New(s.CleanupError)
	}
	return s.CleanupTries, nil
}

// FailedCleanups returns the stale sessions under root whose cleanup failed
// MaxCleanupTries times and is no longer tried, oldest first: what they left
// (a guest Xauthority entry, usually) needs the user. CleanupError says why
// the last try failed. It returns an error when root cannot be read.
func FailedCleanups(root string) ([]State, error) {
	_, stale, err := Live(root)
	if err != nil {
		return nil, err
	}
	return FailedOf(stale), nil
}

// FailedOf returns those of the stale sessions (from Live) whose cleanup
// failed MaxCleanupTries times, in their order.
func FailedOf(stale []State) []State {
	var out []State
	for _, s := range stale {
		if s.CleanupTries >= MaxCleanupTries {
			out = append(out, s)
		}
	}
	return out
}

// FailedCleanupError is a stale session whose cleanup failed
// MaxCleanupTries times (see FailedCleanups): what `xvmview ps` and
// `xvmview check` report. Its text quotes the guest only made visible.
type FailedCleanupError struct{ Session State }

func (e *FailedCleanupError) Error() string {
	s := e.Session
	return fmt.Sprintf("session %s (profile %s, guest %s display %s) left what its cleanup could not undo in %d tries: %s",
		s.ID, guesttext.Line(s.Profile), guesttext.Line(s.Where()), guesttext.Line(s.GuestDisplay), s.CleanupTries, guesttext.Line(s.CleanupError))
}

// CleanSession cleans up the stale session id under root now, whatever
// its count of tries: what `xvmview stop ID` does for a session whose
// launcher is gone. It returns nil when the session is cleaned up (or
// another launch was cleaning it), *NotStaleError when its launcher still
// runs or there is no such session, else why the cleanup failed.
func CleanSession(ctx context.Context, root, id string) error {
	if id == "" || id != filepath.Base(id) || strings.HasPrefix(id, ".") {
		return fmt.Errorf("invalid session id %q", id)
	}
	states, err := ReadStates(root)
	if err != nil {
		return err
	}
	var live []State
	var target *State
	for i, s := range states {
		switch {
		case s.Alive():
			live = append(live, s)
		case s.ID == id:
			target = &states[i]
		}
	}
	if target == nil {
		return &NotStaleError{ID: id}
	}
	// One more try, counted as the last.
	target.CleanupTries = min(target.CleanupTries, MaxCleanupTries-1)
	_, err = cleanClaimed(ctx, root, *target, live)
	return err
}

// NotStaleError means CleanSession found no stale session of that ID.
type NotStaleError struct{ ID string }

func (e *NotStaleError) Error() string {
	return fmt.Sprintf("no stale session %s (its launcher runs, or it is gone)", e.ID)
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
	if s.XephyrCgroup != "" {
		if err := memcg.RemoveStale(ctx, s.XephyrCgroup, XephyrCgroupPrefix); err != nil {
			return err
		}
	}
	if s.GuestEntry && s.Guest != nil && !displayInUse(s, live) {
		cctx, cancel := context.WithTimeout(ctx, staleGuestTimeout)
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
		if l.Guest != nil && l.GuestDisplay == s.GuestDisplay && sameAccount(*l.Guest, *s.Guest) {
			return true
		}
	}
	return false
}

// sameAccount reports whether a and b log in to one guest account, whose
// Xauthority they share.
func sameAccount(a, b guest.Target) bool {
	return a.HostName == b.HostName && a.Port == b.Port && a.User == b.User
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
