package profile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// embedded stands for the built-in profiles.
var embedded = fstest.MapFS{
	"web.toml":    {Data: []byte("description = \"built-in web\"\nhost = \"web\"\ncommand = [\"firefox\"]\n")},
	"demo.toml":   {Data: []byte("description = \"built-in demo\"\nhost = \"local\"\ncommand = [\"xeyes\"]\n")},
	"README.md":   {Data: []byte("not a profile")},
	"sub/x.toml":  {Data: []byte("host = \"x\"\ncommand = [\"x\"]\n")},
	"dir.toml/xx": {Data: []byte("a directory whose name ends in .toml")},
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	user := t.TempDir()
	userWeb := writeFile(t, user, "web.toml", "description = \"my web\"\nhost = \"web2\"\ncommand = [\"chromium\"]\n")
	userOnly := writeFile(t, user, "mine.toml", "host = \"mine\"\ncommand = [\"xterm\"]\n")
	userBroken := writeFile(t, user, "broken.toml", "host = \"x\"\ncomand = [\"x\"]\n")
	dirs := Dirs{User: user, Embedded: embedded}

	tests := []struct {
		name       string
		dirs       Dirs
		profile    string
		wantSource string
		wantHost   string
	}{
		{"user overrides embedded", dirs, "web", userWeb, "web2"},
		{"embedded when the user has none", dirs, "demo", "embedded:demo.toml", "local"},
		{"user only", dirs, "mine", userOnly, "mine"},
		{"no user dir", Dirs{Embedded: embedded}, "web", "embedded:web.toml", "web"},
		{"user dir missing", Dirs{User: filepath.Join(user, "nope"), Embedded: embedded}, "web", "embedded:web.toml", "web"},
		{"no embedded", Dirs{User: user}, "web", userWeb, "web2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load(tt.profile, tt.dirs)
			if err != nil {
				t.Fatalf("Load(%q): %v", tt.profile, err)
			}
			if p.Source != tt.wantSource || p.Host != tt.wantHost || p.Name != tt.profile {
				t.Errorf("Load(%q) = name %q source %q host %q, want %q %q %q",
					tt.profile, p.Name, p.Source, p.Host, tt.profile, tt.wantSource, tt.wantHost)
			}
		})
	}

	t.Run("broken user profile is an error, not the embedded one", func(t *testing.T) {
		_, err := Load("broken", dirs)
		var pe *Error
		if !errors.As(err, &pe) || pe.Source != userBroken || pe.Line != 2 {
			t.Fatalf("Load(broken) = %v, want an *Error at %s:2", err, userBroken)
		}
	})

	t.Run("not found", func(t *testing.T) {
		_, err := Load("nothere", dirs)
		var nf *NotFoundError
		if !errors.As(err, &nf) {
			t.Fatalf("Load(nothere) = %v, want a *NotFoundError", err)
		}
		want := []string{filepath.Join(user, "nothere.toml"), "embedded:nothere.toml"}
		if nf.Name != "nothere" || !reflect.DeepEqual(nf.Searched, want) {
			t.Errorf("NotFoundError = %+v, want Name nothere, Searched %q", nf, want)
		}
		for _, s := range want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not mention %q", err, s)
			}
		}
	})

	t.Run("bad name", func(t *testing.T) {
		_, err := Load("../../etc/passwd", dirs)
		var nf *NotFoundError
		if err == nil || errors.As(err, &nf) || !strings.Contains(err.Error(), "not a path") {
			t.Fatalf("Load(../../etc/passwd) = %v, want a name error", err)
		}
	})

	t.Run("unreadable user file does not fall back", func(t *testing.T) {
		if err := os.Mkdir(filepath.Join(user, "dir.toml"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := Load("dir", dirs)
		var nf *NotFoundError
		if err == nil || errors.As(err, &nf) || !strings.Contains(err.Error(), filepath.Join(user, "dir.toml")) {
			t.Fatalf("Load(dir) = %v, want a read error naming the path", err)
		}
	})

	t.Run("too large", func(t *testing.T) {
		writeFile(t, user, "big.toml", strings.Repeat("#", 2*MaxSize))
		_, err := Load("big", dirs)
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "more than the") {
			t.Fatalf("Load(big) = %v, want a too-large *Error", err)
		}
	})
}

func TestList(t *testing.T) {
	user := t.TempDir()
	userWeb := writeFile(t, user, "web.toml", "description = \"my web\"\nhost = \"web2\"\ncommand = [\"chromium\"]\n")
	userBroken := writeFile(t, user, "broken.toml", "host = \"x\"\n\nscreen = \"1280\"\ncommand = [\"x\"]\n")
	badName := writeFile(t, user, "my web.toml", "host = \"x\"\ncommand = [\"x\"]\n")
	writeFile(t, user, ".#web.toml", "editor lock")
	writeFile(t, user, "notes.txt", "not a profile")
	if err := os.Mkdir(filepath.Join(user, "sub.toml"), 0o700); err != nil {
		t.Fatal(err)
	}

	got, err := List(Dirs{User: user, Embedded: embedded})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []Entry{
		{Name: "broken", Source: userBroken},
		{Name: "demo", Description: "built-in demo", Host: "local", Source: "embedded:demo.toml"},
		{Name: "my web", Source: badName},
		{Name: "web", Description: "my web", Host: "web2", Source: userWeb, Shadows: "embedded:web.toml"},
	}
	wantErr := map[string]string{
		"broken": userBroken + `:3:10: screen "1280" is not WIDTHxHEIGHT`,
		"my web": badName + `: profile name "my web" has " "`,
	}
	if len(got) != len(want) {
		t.Fatalf("List returned %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if ws, ok := wantErr[w.Name]; ok {
			if g.Err == nil || !strings.HasPrefix(g.Err.Error(), ws) {
				t.Errorf("entry %q: Err = %v, want one starting %q", w.Name, g.Err, ws)
			}
		} else if g.Err != nil {
			t.Errorf("entry %q: Err = %v", w.Name, g.Err)
		}
		g.Err = nil
		if g != w {
			t.Errorf("entry %d:\n got  %+v\n want %+v", i, g, w)
		}
	}
}

func TestListNoUserDir(t *testing.T) {
	got, err := List(Dirs{User: filepath.Join(t.TempDir(), "missing"), Embedded: embedded})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 2 || got[0].Name != "demo" || got[1].Name != "web" {
		t.Errorf("List = %+v, want demo and web", got)
	}
}

func TestListUnreadableUserDir(t *testing.T) {
	// A file where the directory should be: reading it fails for root too.
	user := writeFile(t, t.TempDir(), "profiles", "")
	_, err := List(Dirs{User: user, Embedded: embedded})
	if err == nil || !strings.Contains(err.Error(), user) {
		t.Errorf("List = %v, want an error naming %s", err, user)
	}
}

func TestDefaultDirs(t *testing.T) {
	cfg := t.TempDir()
	d := DefaultDirs(cfg)
	if want := filepath.Join(cfg, "xvmview", "profiles"); d.User != want {
		t.Errorf("User = %q, want %q", d.User, want)
	}
	if _, err := fs.Stat(d.Embedded, "demo.toml"); err != nil {
		t.Errorf("Embedded has no demo.toml: %v", err)
	}
}

func TestLoadUnsafe(t *testing.T) {
	const doc = "host = \"web\"\ncommand = [\"x\"]\n"
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, file string)
		bad   func(dir, file string) string // the path the error must name
	}{
		{
			name:  "group-writable file",
			setup: func(t *testing.T, dir, file string) { chmod(t, file, 0o620) },
			bad:   func(dir, file string) string { return file },
		},
		{
			name:  "world-writable directory",
			setup: func(t *testing.T, dir, file string) { chmod(t, dir, 0o777) },
			bad:   func(dir, file string) string { return dir },
		},
		{
			name: "file of another user",
			setup: func(t *testing.T, dir, file string) {
				if os.Geteuid() != 0 {
					t.Skip("needs root to give a file away")
				}
				if err := os.Chown(file, 4242, 4242); err != nil {
					t.Fatal(err)
				}
			},
			bad: func(dir, file string) string { return file },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "profiles")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			file := writeFile(t, dir, "web.toml", doc)
			if _, err := Load("web", Dirs{User: dir, Embedded: embedded}); err != nil {
				t.Fatalf("Load before setup: %v", err)
			}
			tt.setup(t, dir, file)
			_, err := Load("web", Dirs{User: dir, Embedded: embedded})
			var ue *UnsafeFileError
			if !errors.As(err, &ue) || ue.Path != tt.bad(dir, file) {
				t.Fatalf("Load = %v, want an *UnsafeFileError for %s", err, tt.bad(dir, file))
			}
			entries, err := List(Dirs{User: dir})
			if err != nil || len(entries) != 1 || !errors.As(entries[0].Err, &ue) {
				t.Errorf("List = %+v, %v, want web listed with an *UnsafeFileError", entries, err)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
