package desktop

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func entryFor(t *testing.T, name string) Entry {
	t.Helper()
	p := demoProfile(t, "demo")
	p.Name = name
	e, err := New(p, "/usr/bin/xvmview")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "share", "applications")
	p, err := Install(dir, entryFor(t, "demo"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "xvmview-demo.desktop"); p != want {
		t.Errorf("Install wrote %s, want %s", p, want)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("created directory with mode %v, want 0700", di.Mode().Perm())
	}
	if s := readString(t, p); !strings.Contains(s, "\nExec=/usr/bin/xvmview run demo\n") {
		t.Errorf("entry:\n%s", s)
	}

	// Installing again replaces the entry xvmview wrote.
	e := entryFor(t, "demo")
	e.Name = "Renamed"
	if _, err := Install(dir, e); err != nil {
		t.Fatalf("install over our own entry: %v", err)
	}
	if s := readString(t, p); !strings.Contains(s, "\nName=Renamed\n") {
		t.Errorf("entry not replaced:\n%s", s)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 1 {
		t.Errorf("directory has %d files, want only the entry (no temporary files)", len(des))
	}
}

func TestInstallRefuses(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		setup   func(t *testing.T, dir string)
		dir     func(dir string) string
		wantErr string
		foreign bool
	}{
		{name: "foreign file", profile: "web", setup: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "xvmview-web.desktop"), "[Desktop Entry]\nName=mine\n")
		}, foreign: true},
		{name: "other profile's marker", profile: "web", setup: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "xvmview-web.desktop"), "[Desktop Entry]\nX-Xvmview-Profile=webmail\n")
		}, foreign: true},
		{name: "symlink to our entry", profile: "web", setup: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "real"), "[Desktop Entry]\nX-Xvmview-Profile=web\n")
			if err := os.Symlink("real", filepath.Join(dir, "xvmview-web.desktop")); err != nil {
				t.Fatal(err)
			}
		}, foreign: true},
		{name: "directory in the way", profile: "web", setup: func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "xvmview-web.desktop"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, foreign: true},
		{name: "path as name", profile: "../../bin/evil", wantErr: "not a path"},
		{name: "dot dot", profile: "a..b", wantErr: `".."`},
		{name: "space", profile: "a b", wantErr: `has " "`},
		{name: "quote", profile: `a"b`, wantErr: `has "\""`},
		{name: "newline", profile: "a\nb", wantErr: "profile name"},
		{name: "empty", profile: "", wantErr: "empty"},
		{name: "relative directory", profile: "web", dir: func(string) string { return "share/applications" }, wantErr: "not an absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			before := listing(t, dir)
			e := entryFor(t, "web")
			e.Profile = tc.profile
			target := dir
			if tc.dir != nil {
				target = tc.dir(dir)
			}
			p, err := Install(target, e)
			var fe *ForeignFileError
			switch {
			case err == nil:
				t.Fatalf("Install wrote %s, want an error", p)
			case tc.foreign && !errors.As(err, &fe):
				t.Fatalf("Install: %v, want a *ForeignFileError", err)
			case !tc.foreign && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Install: %v, want an error containing %q", err, tc.wantErr)
			}
			if after := listing(t, dir); after != before {
				t.Errorf("Install changed the directory:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// listing describes the files in dir and their contents.
func listing(t *testing.T, dir string) string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, de := range des {
		b.WriteString(de.Name() + " " + de.Type().String())
		if de.Type().IsRegular() {
			b.WriteString(" " + readString(t, filepath.Join(dir, de.Name())))
		}
		b.WriteString("; ")
	}
	return b.String()
}

func TestRemoveAndInstalled(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"web", "mail", "demo"} {
		if _, err := Install(dir, entryFor(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	foreign := map[string]string{
		"firefox.desktop":         "[Desktop Entry]\nType=Application\nName=Firefox\nExec=firefox\n",
		"xvmview-hand.desktop":    "[Desktop Entry]\nType=Application\nName=By hand\nExec=xvmview run hand\n",
		"xvmview-other.desktop":   "[Desktop Entry]\nX-Xvmview-Profile=web\n",
		"xvmview-.desktop":        "[Desktop Entry]\nX-Xvmview-Profile=\n",
		"xvmview-web.desktop.bak": "[Desktop Entry]\nX-Xvmview-Profile=web\n",
	}
	for n, s := range foreign {
		write(t, filepath.Join(dir, n), s)
	}
	if err := os.Symlink("xvmview-web.desktop", filepath.Join(dir, "xvmview-link.desktop")); err != nil {
		t.Fatal(err)
	}

	got, err := Installed(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"demo", "mail", "web"}; !slices.Equal(got, want) {
		t.Errorf("Installed = %q, want %q", got, want)
	}

	p, err := Remove(dir, "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after Remove: %v", p, err)
	}

	var ni *NotInstalledError
	if _, err := Remove(dir, "web"); !errors.As(err, &ni) {
		t.Errorf("Remove of a removed entry: %v, want a *NotInstalledError", err)
	}
	for _, n := range []string{"hand", "other", "link"} {
		var fe *ForeignFileError
		if _, err := Remove(dir, n); !errors.As(err, &fe) {
			t.Errorf("Remove(%q): %v, want a *ForeignFileError", n, err)
		}
	}
	if _, err := Remove(dir, "../x"); err == nil || !strings.Contains(err.Error(), "not a path") {
		t.Errorf("Remove(\"../x\"): %v, want a name error", err)
	}
	for n, s := range foreign {
		if got := readString(t, filepath.Join(dir, n)); got != s {
			t.Errorf("%s changed to %q", n, got)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "xvmview-link.desktop")); err != nil {
		t.Errorf("symbolic link removed: %v", err)
	}

	if got, err := Installed(filepath.Join(dir, "nonexistent")); err != nil || got != nil {
		t.Errorf("Installed(missing dir) = %q, %v; want none", got, err)
	}
}
