package profile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/xvmview/xvmview/profiles"
)

// Dirs says where profiles are looked up. Either field may be zero to skip
// that place.
type Dirs struct {
	// User is the directory of the user's own profiles, which shadow the
	// embedded ones.
	User string
	// Embedded holds the built-in profiles at its root.
	Embedded fs.FS
}

// DefaultDirs returns configHome/xvmview/profiles (configHome is
// $XDG_CONFIG_HOME, usually ~/.config) and the profiles built into xvmview.
func DefaultDirs(configHome string) Dirs {
	return Dirs{
		User:     filepath.Join(configHome, "xvmview", "profiles"),
		Embedded: profiles.FS,
	}
}

// EmbeddedSource is the Source of the built-in profile called name.
func EmbeddedSource(name string) string { return "embedded:" + name + ".toml" }

// NotFoundError is returned by Load when no place in Dirs has the profile.
type NotFoundError struct {
	Name     string
	Searched []string // the paths and embedded sources looked at, in order
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("profile %q not found (looked for %s)",
		e.Name, strings.Join(e.Searched, " and "))
}

// Load finds the profile called name, in dirs.User first and then in
// dirs.Embedded, and parses it. It returns a *NotFoundError when neither has
// it, an error from ValidName for a bad name, an *Error for a bad profile,
// and, when the user's file exists but cannot be used, a wrapped
// *UnsafeFileError or file system error (it never falls back to the built-in
// profile then).
func Load(name string, dirs Dirs) (Profile, error) {
	if err := ValidName(name); err != nil {
		return Profile{}, err
	}
	var searched []string
	if dirs.User != "" {
		p := filepath.Join(dirs.User, name+".toml")
		searched = append(searched, p)
		data, err := readFile(p)
		switch {
		case err == nil:
			return Parse(name, p, data)
		case !errors.Is(err, fs.ErrNotExist):
			return Profile{}, fmt.Errorf("load profile %s: %w", name, err)
		}
	}
	if dirs.Embedded != nil {
		src := EmbeddedSource(name)
		searched = append(searched, src)
		data, err := fs.ReadFile(dirs.Embedded, name+".toml")
		switch {
		case err == nil:
			return Parse(name, src, data)
		case !errors.Is(err, fs.ErrNotExist):
			return Profile{}, fmt.Errorf("read built-in profile %s: %w", src, err)
		}
	}
	return Profile{}, &NotFoundError{Name: name, Searched: searched}
}

// UnsafeFileError is returned for a user profile, or its directory, that
// belongs to another user or that others may write: a profile says what to
// run, so xvmview refuses it as ssh refuses such a config file.
type UnsafeFileError struct {
	Path string
	Why  string // e.g. "is writable by other users (mode 0666)"
	Fix  string // a command that fixes it, e.g. "chmod go-w PATH"
}

func (e *UnsafeFileError) Error() string {
	return fmt.Sprintf("%s %s; a profile says what to run, so fix it: %s", e.Path, e.Why, e.Fix)
}

// checkSafe returns an *UnsafeFileError if fi, the file or directory at
// path, belongs to a user other than root or us, or if others may write it
// (a sticky directory is allowed).
func checkSafe(fi fs.FileInfo, path string) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := st.Uid; uid != 0 && int(uid) != os.Geteuid() {
			return &UnsafeFileError{Path: path, Why: fmt.Sprintf("belongs to another user (uid %d)", uid), Fix: "chown $(id -u) " + path}
		}
	}
	if m := fi.Mode(); m.Perm()&0o022 != 0 && m&fs.ModeSticky == 0 {
		return &UnsafeFileError{Path: path, Why: fmt.Sprintf("is writable by other users (mode %#o)", m.Perm()), Fix: "chmod go-w " + path}
	}
	return nil
}

// readFile reads a user's profile file after checkSafe on it and on its
// directory. It reads at most MaxSize+1 bytes, so that Parse reports a file
// too large rather than reading a device that never ends.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkSafe(fi, path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if err := checkSafe(di, dir); err != nil {
		return nil, err
	}
	// Errors from an *os.File already name the path.
	return io.ReadAll(io.LimitReader(f, MaxSize+1))
}

// Entry is one profile in a List.
type Entry struct {
	Name        string
	Description string // "" when Err is set
	Host        string // "" when Err is set
	Source      string // file path or "embedded:NAME.toml"
	// Shadows is the Source of the built-in profile this user profile
	// replaces, or "".
	Shadows string
	// Err is why the profile cannot be used (an *Error, a ValidName error,
	// an *UnsafeFileError or a read error); such profiles are listed, not
	// hidden.
	Err error
}

// List returns every profile in dirs sorted by name, a user profile
// replacing the built-in one of the same name. Broken profiles are listed
// with their Err set. List itself fails only when dirs.User exists but cannot
// be read, or dirs.Embedded cannot be read.
func List(dirs Dirs) ([]Entry, error) {
	byName := make(map[string]Entry)
	if dirs.Embedded != nil {
		files, err := fs.ReadDir(dirs.Embedded, ".")
		if err != nil {
			return nil, fmt.Errorf("list built-in profiles: %w", err)
		}
		for _, de := range files {
			name, ok := strings.CutSuffix(de.Name(), ".toml")
			if !ok || de.IsDir() {
				continue
			}
			e := Entry{Name: name, Source: EmbeddedSource(name)}
			data, err := fs.ReadFile(dirs.Embedded, de.Name())
			if err != nil {
				e.Err = fmt.Errorf("read built-in profile %s: %w", e.Source, err)
			} else {
				e.fill(Parse(name, e.Source, data))
			}
			byName[name] = e
		}
	}
	if dirs.User != "" {
		files, err := os.ReadDir(dirs.User)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list profiles: %w", err)
		}
		for _, de := range files {
			name, ok := strings.CutSuffix(de.Name(), ".toml")
			// Skip directories and hidden files such as editor locks (.#x.toml).
			if !ok || de.IsDir() || strings.HasPrefix(de.Name(), ".") {
				continue
			}
			p := filepath.Join(dirs.User, de.Name())
			e := Entry{Name: name, Source: p}
			if old, ok := byName[name]; ok {
				e.Shadows = old.Source
			}
			if err := ValidName(name); err != nil {
				e.Err = fmt.Errorf("%s: %w; rename the file", p, err)
			} else if data, err := readFile(p); err != nil {
				e.Err = err
			} else {
				e.fill(Parse(name, p, data))
			}
			byName[name] = e
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (e *Entry) fill(p Profile, err error) {
	if err != nil {
		e.Err = err
		return
	}
	e.Description, e.Host = p.Description, p.Host
}
