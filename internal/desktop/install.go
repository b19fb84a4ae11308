package desktop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xvmview/xvmview/internal/profile"
)

// maxFileSize is the most Installed and Remove read of a desktop file when
// they look for the marker.
const maxFileSize = 64 << 10

// ForeignFileError is returned by Install and Remove for a file at the
// entry's path that xvmview did not write (it lacks the marker of the
// profile, or is not a regular file). Such files are left alone.
type ForeignFileError struct {
	Path    string
	Profile string
}

func (e *ForeignFileError) Error() string {
	return fmt.Sprintf("%s was not written by xvmview (it has no %s=%s line), so it is left alone; move it away if you want xvmview to manage it",
		e.Path, MarkerKey, e.Profile)
}

// NotInstalledError is returned by Remove when the profile has no entry.
type NotInstalledError struct {
	Path    string
	Profile string
}

func (e *NotInstalledError) Error() string {
	return fmt.Sprintf("profile %s has no menu entry (no %s)", e.Profile, e.Path)
}

// path returns the path of the entry of profile name in dir, and checks that
// it is a file right inside dir.
func entryPath(dir, name string) (string, error) {
	if err := profile.ValidName(name); err != nil {
		return "", err
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("applications directory %q is not an absolute path; check XDG_DATA_HOME", dir)
	}
	p := filepath.Join(dir, FileName(name))
	if filepath.Dir(p) != filepath.Clean(dir) {
		return "", fmt.Errorf("menu entry for profile %q would not be inside %s", name, dir)
	}
	return p, nil
}

// Install writes e to dir (creating it 0700 if needed) as FileName(e.Profile),
// mode 0644, through a temporary file and a rename, replacing an entry that
// xvmview wrote before. It returns the file's path; a *ForeignFileError when
// a file xvmview did not write is in the way; an error from profile.ValidName
// for a bad profile name; and file system errors, which name the path.
func Install(dir string, e Entry) (string, error) {
	p, err := entryPath(dir, e.Profile)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if _, err := e.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("menu entry for profile %s: %w", e.Profile, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	switch ours, err := isOurs(p, e.Profile); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	case !ours:
		return "", &ForeignFileError{Path: p, Profile: e.Profile}
	}
	f, err := os.CreateTemp(dir, "."+FileName(e.Profile)+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", err
	}
	return p, nil
}

// Remove deletes the entry of the profile called name from dir and returns
// its path. It returns a *NotInstalledError when there is none, a
// *ForeignFileError when the file there was not written by xvmview, an error
// from profile.ValidName for a bad name, and file system errors.
func Remove(dir, name string) (string, error) {
	p, err := entryPath(dir, name)
	if err != nil {
		return "", err
	}
	switch ours, err := isOurs(p, name); {
	case errors.Is(err, fs.ErrNotExist):
		return "", &NotInstalledError{Path: p, Profile: name}
	case err != nil:
		return "", err
	case !ours:
		return "", &ForeignFileError{Path: p, Profile: name}
	}
	if err := os.Remove(p); err != nil {
		return "", err
	}
	return p, nil
}

// Installed returns the sorted names of the profiles that have an entry in
// dir written by xvmview; files xvmview did not write are ignored. A missing
// dir has none. It fails only when dir cannot be read.
func Installed(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		rest, ok := strings.CutPrefix(de.Name(), "xvmview-")
		if !ok {
			continue
		}
		name, ok := strings.CutSuffix(rest, ".desktop")
		if !ok || profile.ValidName(name) != nil {
			continue
		}
		if ours, err := isOurs(filepath.Join(dir, de.Name()), name); err == nil && ours {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// isOurs reports whether the file at p is a regular file whose
// [Desktop Entry] group has MarkerKey=name. It does not follow a symbolic
// link; an error wrapping fs.ErrNotExist means there is no file.
func isOurs(p, name string) (bool, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return hasMarker(io.LimitReader(f, maxFileSize), name)
}

// hasMarker reports whether the desktop file read from r has MarkerKey=name
// in its [Desktop Entry] group.
func hasMarker(r io.Reader, name string) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxFileSize)
	group := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[':
			group = line
		case group == "[Desktop Entry]":
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.TrimSpace(k) == MarkerKey && strings.TrimSpace(v) == EscapeString(name) {
				return true, nil
			}
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return false, err
	}
	return false, nil
}
