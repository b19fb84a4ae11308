package xauth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// Lock tuning defaults. DefaultDeadTime is xauth's. xauth polls 10 times 2 s
// apart; a writer holds the lock for milliseconds, so polling every 50 ms
// gets it sooner, and 100 polls (about 5 s) outlast the 2 s an xauth that lost
// a race sleeps while holding FILE-c, yet fail an interactive run well before
// xauth's 20 s with a LockedError that says what to do.
const (
	DefaultDeadTime  = 600 * time.Second
	DefaultRetries   = 100
	DefaultRetryWait = 50 * time.Millisecond
)

// Locker edits Xauthority files under libXau's lock protocol (XauLockAuth):
// create FILE-c with O_EXCL, hard-link it to FILE-l; a FILE-c whose inode
// change time is older than DeadTime was left by a dead writer and is
// removed. The zero Locker uses the defaults above.
type Locker struct {
	DeadTime  time.Duration // <= 0: DefaultDeadTime
	Retries   int           // attempts before LockedError; <= 0: DefaultRetries
	RetryWait time.Duration // mean wait between attempts (jittered ±50%); <= 0: DefaultRetryWait
}

// LockedError reports a lock that another writer held through every attempt.
type LockedError struct {
	Path     string        // the Xauthority file
	LockFile string        // FILE-l (or FILE-c) that stayed in place
	Attempts int           // attempts made
	Waited   time.Duration // time spent waiting
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("locked by another writer: lock file %s stayed for %d attempts over %s; "+
		"wait for the xauth or xvmview process editing the file to finish, or if none is running remove %s-c and %s-l",
		e.LockFile, e.Attempts, e.Waited.Round(time.Millisecond), e.Path, e.Path)
}

func (l Locker) deadTime() time.Duration {
	if l.DeadTime <= 0 {
		return DefaultDeadTime
	}
	return l.DeadTime
}

func (l Locker) retries() int {
	if l.Retries <= 0 {
		return DefaultRetries
	}
	return l.Retries
}

func (l Locker) retryWait() time.Duration {
	if l.RetryWait <= 0 {
		return DefaultRetryWait
	}
	return l.RetryWait
}

// breakStale removes FILE-c and FILE-l if FILE-c is older than the dead time,
// as XauLockAuth does. Like libXau, two writers breaking one stale lock at
// the same moment can race; that needs a writer dead for DeadTime.
func (l Locker) breakStale(cName, lName string) {
	fi, err := os.Stat(cName)
	if err != nil || time.Since(changeTime(fi)) <= l.deadTime() {
		return
	}
	_ = os.Remove(cName)
	_ = os.Remove(lName)
}

// Lock takes the lock on the Xauthority file path and returns the function
// that releases it (removing FILE-c, then FILE-l, as XauUnlockAuth does).
// It returns a *LockedError when another writer holds the lock through every
// attempt, ctx's error (wrapped) when ctx ends first, and an error naming
// the lock file when it cannot be created (missing or read-only directory).
// On error no lock file of its own is left behind.
func (l Locker) Lock(ctx context.Context, path string) (unlock func() error, err error) {
	cName, lName := path+"-c", path+"-l"
	created := false
	giveUp := func(err error) (func() error, error) {
		if created {
			_ = os.Remove(cName)
		}
		return nil, err
	}
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return giveUp(fmt.Errorf("wait for lock file %s: %w", lName, err))
		}
		held := lName
		if !created {
			l.breakStale(cName, lName)
			f, err := os.OpenFile(cName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			switch {
			case err == nil:
				created = true
				if err := f.Close(); err != nil {
					return giveUp(fmt.Errorf("create lock file: %w", err))
				}
			case errors.Is(err, fs.ErrExist):
				held = cName
			default:
				return giveUp(fmt.Errorf("create lock file: %w", err))
			}
		}
		if created {
			err := os.Link(cName, lName)
			switch {
			case err == nil:
				return func() error {
					errC := os.Remove(cName)
					errL := os.Remove(lName)
					if err := errors.Join(errC, errL); err != nil {
						return fmt.Errorf("unlock: %w", err)
					}
					return nil
				}, nil
			case errors.Is(err, fs.ErrNotExist):
				// Someone broke our FILE-c as stale: create it again.
				created = false
				continue
			case !errors.Is(err, fs.ErrExist):
				return giveUp(fmt.Errorf("link lock file: %w", err))
			}
		}
		if attempt >= l.retries() {
			return giveUp(&LockedError{Path: path, LockFile: held, Attempts: attempt, Waited: time.Since(start)})
		}
		w := l.retryWait()
		w = w/2 + rand.N(w)
		if timer == nil {
			timer = time.NewTimer(w)
		} else {
			timer.Reset(w)
		}
		select {
		case <-ctx.Done():
			return giveUp(fmt.Errorf("wait for lock file %s: %w", held, ctx.Err()))
		case <-timer.C:
		}
	}
}

// readIfExists reads an Xauthority file; a missing file has no entries.
func readIfExists(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return entries, nil
}

// edit runs change on the entries of path under the lock and, if it reports
// a change, writes the result to FILE-n and renames it over path.
func (l Locker) edit(ctx context.Context, path string, change func([]Entry) ([]Entry, bool)) (err error) {
	unlock, err := l.Lock(ctx, path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	old, err := readIfExists(path)
	if err != nil {
		return err
	}
	entries, changed := change(old)
	if !changed {
		return nil
	}
	if err := replaceLocked(path, xauthOrder(entries)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// Merge adds entries to the Xauthority file path under the lock, as `xauth
// nmerge` does: an entry replaces, in place, the first one with equal
// family, address, number and name; others are appended; all other entries
// are kept; the file is created (0600) if missing. Of several entries with
// one key in entries the last wins (xauth keeps them all when the file is
// new). It writes in xauth
// 1.1's order (MIT-MAGIC-COOKIE-1 before other names, then specific before
// Wild, numbered before unnumbered), so its result is byte-identical to
// xauth's.
//
// It returns an error, and leaves the file byte-identical, if an entry has a
// field longer than 65535 bytes, the file is malformed (*FormatError) or
// unreadable, the lock is held (*LockedError) or cannot be made, ctx ends, or
// writing fails. Errors name the path.
func (l Locker) Merge(ctx context.Context, path string, entries ...Entry) error {
	for i, e := range entries {
		if err := e.check(); err != nil {
			return fmt.Errorf("merge into Xauthority file %s: entry %d: %w", path, i, err)
		}
	}
	err := l.edit(ctx, path, func(old []Entry) ([]Entry, bool) {
		return mergeEntries(old, entries), true
	})
	if err != nil {
		return fmt.Errorf("merge into Xauthority file %s: %w", path, err)
	}
	return nil
}

// Remove deletes the entries for display from the Xauthority file path
// under the lock, by xauth 1.1's rule for `remove DISPLAY`, which is the
// client lookup rule (see Lookup): every entry a client of the display could
// use, whatever its protocol name. That is, entries with the display's key
// (see ParseDisplay, with os.Hostname for local names) or family Wild, and
// with the display's number or none: `remove :5` also removes Wild entries
// for 5 and entries without a number. It leaves the file untouched
// when nothing matches and succeeds when the file does not exist.
//
// It returns a *DisplayError for a bad display name, and otherwise the
// errors of Merge.
func (l Locker) Remove(ctx context.Context, path, display string) error {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = ""
	}
	d, err := ParseDisplay(display, hostname)
	if err != nil {
		return fmt.Errorf("remove from Xauthority file %s: %w", path, err)
	}
	err = l.edit(ctx, path, func(old []Entry) ([]Entry, bool) {
		kept := make([]Entry, 0, len(old))
		for _, e := range old {
			if !d.matchesForRemove(e) {
				kept = append(kept, e)
			}
		}
		return kept, len(kept) != len(old)
	})
	if err != nil {
		return fmt.Errorf("remove %s from Xauthority file %s: %w", d, path, err)
	}
	return nil
}

// matchesForRemove is xauth 1.1's rule for `remove` (match_auth_dpy), the
// lookup rule of XauGetBestAuthByAddr: Wild or equal family and address, and
// an empty or equal number.
func (d Display) matchesForRemove(e Entry) bool {
	if e.Family != FamilyWild && (e.Family != d.Family || string(e.Address) != string(d.Address)) {
		return false
	}
	return e.Number == "" || e.Number == d.Number
}

// Merge is Locker{}.Merge: default lock tuning.
func Merge(ctx context.Context, path string, entries ...Entry) error {
	return Locker{}.Merge(ctx, path, entries...)
}

// Remove is Locker{}.Remove: default lock tuning.
func Remove(ctx context.Context, path, display string) error {
	return Locker{}.Remove(ctx, path, display)
}

// mergeEntries is xauth's merge_entries: replace in place or append.
func mergeEntries(old, add []Entry) []Entry {
	out := make([]Entry, len(old), len(old)+len(add))
	copy(out, old)
	for _, e := range add {
		replaced := false
		for i := range out {
			if out[i].sameKey(e) {
				out[i], replaced = e, true
				break
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}

// xauthOrder returns entries in the order xauth 1.1 writes them (found by
// experiment with xauth 1.1.2): MIT-MAGIC-COOKIE-1 entries before others;
// within each, specific entries before Wild ones, and entries with a number
// before those without; list order among equals. libXau's lookup takes the
// first match, so specific entries shadow catch-all ones.
func xauthOrder(entries []Entry) []Entry {
	class := func(e Entry) int {
		c := 0
		if e.Name != CookieName {
			c += 4
		}
		if e.Family == FamilyWild {
			c += 2
		}
		if e.Number == "" {
			c++
		}
		return c
	}
	out := make([]Entry, 0, len(entries))
	for want := range 8 {
		for _, e := range entries {
			if class(e) == want {
				out = append(out, e)
			}
		}
	}
	return out
}

// replaceLocked writes entries to path+"-n" (0600, O_EXCL after removing a
// leftover, as xauth does), syncs it and renames it over path. The caller
// holds the lock. On error path is untouched and FILE-n removed.
func replaceLocked(path string, entries []Entry) error {
	b, err := encode(entries)
	if err != nil {
		return err
	}
	tmp := path + "-n"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove leftover: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return commit(f, b, path)
}

// commit writes b to the new file f, syncs and closes it, and renames it to
// path, then syncs the directory. It removes f on failure.
func commit(f *os.File, b []byte, path string) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // best effort: the rename is already atomic
		_ = d.Close()
	}
	return nil
}

// WriteFile atomically replaces (or creates) the Xauthority file path with
// entries: it writes a 0600 temporary file in the same directory, syncs it
// and renames it over path, so a reader sees the old file or the new one,
// never a partial one. It is for files xvmview alone writes, such as the X
// server's -auth file, and takes no lock.
//
// It refuses an empty entries list: an X server whose -auth file is empty
// lets every local client in. It returns an error naming the path for that,
// for a field longer than 65535 bytes, and when writing fails, and then
// leaves path untouched.
func WriteFile(path string, entries []Entry) error {
	if len(entries) == 0 {
		return fmt.Errorf("write Xauthority file %s: no entries (an empty file disables X access control)", path)
	}
	b, err := encode(entries)
	if err != nil {
		return fmt.Errorf("write Xauthority file %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write Xauthority file %s: %w", path, err)
	}
	if err := commit(f, b, path); err != nil {
		return fmt.Errorf("write Xauthority file %s: %w", path, err)
	}
	return nil
}

// ReadFile reads every entry of the Xauthority file path, without locking,
// as libXau's readers do. Errors name the path; a missing file's error
// matches fs.ErrNotExist, a malformed one's is a *FormatError.
func ReadFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read Xauthority file: %w", err)
	}
	defer f.Close()
	entries, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("read Xauthority file %s: %w", path, err)
	}
	return entries, nil
}
