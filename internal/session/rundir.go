package session

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/procfs"
)

// RuntimeRootIn returns the directory that holds one private directory per
// session: $XDG_RUNTIME_DIR/xvmview when the runtime dir exists, else
// tmpDir/xvmview-UID (checked as strictly as the former); tmpDir is $TMPDIR
// or /tmp of the caller's environment.
func RuntimeRootIn(xdgRuntimeDir, tmpDir string) string {
	if xdgRuntimeDir != "" {
		if fi, err := os.Stat(xdgRuntimeDir); err == nil && fi.IsDir() {
			return filepath.Join(xdgRuntimeDir, "xvmview")
		}
	}
	return filepath.Join(tmpDir, fmt.Sprintf("xvmview-%d", os.Getuid()))
}

// UnsafeDirError reports a runtime directory that another user could tamper
// with: owned by someone else, or writable by group or others.
type UnsafeDirError struct {
	Path   string
	Reason string
}

func (e *UnsafeDirError) Error() string {
	return fmt.Sprintf("refusing runtime directory %s: %s", e.Path, e.Reason)
}

// ensurePrivateDir creates dir with mode 0700 if missing and checks that it
// is a real directory (not a symlink), owned by us, with no group or other
// permissions. It returns *UnsafeDirError when it is not.
func ensurePrivateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create runtime directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check runtime directory: %w", err)
	}
	if !fi.IsDir() {
		return &UnsafeDirError{dir, "not a directory (a symlink or a file)"}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &UnsafeDirError{dir, "cannot read its owner"}
	}
	if int(st.Uid) != os.Getuid() {
		return &UnsafeDirError{dir, fmt.Sprintf("owned by uid %d, not by you (uid %d)", st.Uid, os.Getuid())}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &UnsafeDirError{dir, fmt.Sprintf("mode %04o lets other users in; want 0700", fi.Mode().Perm())}
	}
	return nil
}

// sessionDir is one launch's private directory under the runtime root.
type sessionDir struct {
	Root string // the runtime root
	ID   string
	Path string
}

func newSessionDir(root string) (*sessionDir, error) {
	if err := ensurePrivateDir(root); err != nil {
		return nil, err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("make session id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	p := filepath.Join(root, id)
	if err := os.Mkdir(p, 0o700); err != nil {
		return nil, fmt.Errorf("create session directory: %w", err)
	}
	return &sessionDir{Root: root, ID: id, Path: p}, nil
}

func (d *sessionDir) file(name string) string { return filepath.Join(d.Path, name) }

// Remove deletes the session directory and everything in it.
func (d *sessionDir) Remove() error {
	if err := os.RemoveAll(d.Path); err != nil {
		return fmt.Errorf("remove session directory: %w", err)
	}
	return nil
}

// State is what a running session records in its directory so that the next
// launch (or `xvmview ps`) can find it, and clean up after a launcher that was
// killed. It never holds the cookie.
type State struct {
	ID           string        `json:"id"`
	Profile      string        `json:"profile"`
	LauncherPID  int           `json:"launcher_pid"`
	LauncherTime uint64        `json:"launcher_start_ticks"`
	Started      time.Time     `json:"started"`
	XephyrPID    int           `json:"xephyr_pid,omitempty"`
	XephyrCgroup string        `json:"xephyr_cgroup,omitempty"` // the memory cgroup leaf made for Xephyr, removed with it
	Display      int           `json:"display"`
	Guest        *guest.Target `json:"guest,omitempty"`
	GuestDisplay string        `json:"guest_display,omitempty"` // the display the guest's programs use
	GuestEntry   bool          `json:"guest_entry,omitempty"`   // older versions: true while the guest's ~/.Xauthority may hold our entry
	Running      bool          `json:"running,omitempty"`       // the app has started
	// Set on a stale session by CleanStale: how many cleanups were tried
	// (at most MaxCleanupTries) and why the last one failed (made visible).
	CleanupTries int    `json:"cleanup_tries,omitempty"`
	CleanupError string `json:"cleanup_error,omitempty"`
	VM           *VMUse `json:"vm,omitempty"` // the libvirt domain it uses (vm.go)
}

// Where names the session's guest as user@host:port, or "local".
func (s State) Where() string {
	if s.Guest == nil {
		return "local"
	}
	return s.Guest.User + "@" + s.Guest.Addr()
}

const stateName = "state.json"

// writeState replaces the state file atomically (temp file, 0600, rename).
func (d *sessionDir) writeState(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode session state: %w", err)
	}
	tmp := d.file(stateName + ".new")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write session state: %w", err)
	}
	if err := os.Rename(tmp, d.file(stateName)); err != nil {
		return fmt.Errorf("write session state: %w", err)
	}
	return nil
}

// ReadStates returns the state of every session directory under root, live
// or stale. Directories without a readable state are returned with only ID
// set (a launch that died before recording anything).
func ReadStates(root string) ([]State, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read runtime directory: %w", err)
	}
	var out []State
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var s State
		b, err := os.ReadFile(filepath.Join(root, e.Name(), stateName))
		if err == nil {
			_ = json.Unmarshal(b, &s)
		}
		s.ID = e.Name()
		out = append(out, s)
	}
	return out, nil
}

// Alive reports whether the launcher that wrote s is still running: the PID
// exists and started at the recorded time (so a reused PID does not count).
func (s State) Alive() bool {
	if s.LauncherPID <= 0 {
		return false
	}
	st, err := procfs.ReadStat(s.LauncherPID)
	return err == nil && st.StartTicks == s.LauncherTime
}
