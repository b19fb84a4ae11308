package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestXDGDirs(t *testing.T) {
	uid := strconv.Itoa(os.Getuid())
	for _, tt := range []struct {
		name string
		env  map[string]string
		want baseDirs
	}{
		{"defaults", map[string]string{"HOME": "/home/a"},
			baseDirs{"/home/a/.config", "/home/a/.local/share", "/home/a/.local/state", "/run/user/" + uid}},
		{"set", map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "/c", "XDG_DATA_HOME": "/d", "XDG_STATE_HOME": "/s", "XDG_RUNTIME_DIR": "/r"},
			baseDirs{"/c", "/d", "/s", "/r"}},
		{"relative ignored", map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "conf", "XDG_RUNTIME_DIR": "./r"},
			baseDirs{"/home/a/.config", "/home/a/.local/share", "/home/a/.local/state", "/run/user/" + uid}},
		{"home expanded", map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "~/cfg", "XDG_DATA_HOME": "$HOME/data"},
			baseDirs{"/home/a/cfg", "/home/a/data", "/home/a/.local/state", "/run/user/" + uid}},
		{"no home", map[string]string{},
			baseDirs{"/.config", "/.local/share", "/.local/state", "/run/user/" + uid}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := xdgDirs(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("xdgDirs(%v) = %+v, want %+v", tt.env, got, tt.want)
			}
		})
	}
}

// TestEnvNotProcess: the XDG directories and HOME come from the Env that
// run is handed, not from the process's environment, which names others.
func TestEnvNotProcess(t *testing.T) {
	proc := t.TempDir()
	for k, v := range map[string]string{"HOME": proc, "XDG_CONFIG_HOME": filepath.Join(proc, "c"),
		"XDG_DATA_HOME": filepath.Join(proc, "d"), "XDG_STATE_HOME": filepath.Join(proc, "s"),
		"XDG_RUNTIME_DIR": filepath.Join(proc, "r"), "DISPLAY": ""} {
		t.Setenv(k, v)
	}
	home := t.TempDir()
	vars := map[string]string{"HOME": home, "PATH": os.Getenv("PATH"),
		"XDG_CONFIG_HOME": filepath.Join(home, "cfg"), "XDG_DATA_HOME": filepath.Join(home, "data"),
		"XDG_STATE_HOME": filepath.Join(home, "state"), "XDG_RUNTIME_DIR": filepath.Join(home, "run")}
	env := func(stdout, stderr io.Writer) Env {
		return Env{Stdout: stdout, Stderr: stderr, Getenv: func(k string) string { return vars[k] }, Environ: func() []string {
			var l []string
			for k, v := range vars {
				l = append(l, k+"="+v)
			}
			return l
		}}
	}
	profiles := filepath.Join(home, "cfg", "xvmview", "profiles")
	for _, d := range []string{profiles, filepath.Join(home, "run"), filepath.Join(proc, "r")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(profiles, "envonly.toml"), []byte("description = \"from the Env's config\"\nhost = \"local\"\ncommand = [\"xclock\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) string {
		t.Helper()
		var o, e bytes.Buffer
		if code := run(context.Background(), args, env(&o, &e)); code != 0 {
			t.Fatalf("xvmview %s: exit %d\n%s%s", strings.Join(args, " "), code, o.String(), e.String())
		}
		return o.String()
	}
	if out := cmd("list"); !strings.Contains(out, "envonly") {
		t.Errorf("list does not show the profile in the Env's XDG_CONFIG_HOME:\n%s", out)
	}
	if out := cmd("run", "--dry-run", "envonly"); !strings.Contains(out, filepath.Join(home, "run")+"/") {
		t.Errorf("run --dry-run does not put the session under the Env's XDG_RUNTIME_DIR:\n%s", out)
	}
	cmd("desktop", "install", "envonly")
	if _, err := os.Stat(filepath.Join(home, "data", "applications", "xvmview-envonly.desktop")); err != nil {
		t.Errorf("desktop install did not write to the Env's XDG_DATA_HOME: %v (there: %v)", err, dirNames(t, filepath.Join(home, "data", "applications")))
	}
	c := newCLI(env(io.Discard, io.Discard))
	_, log := c.sessionOptions("envonly", false, "")
	if log == nil {
		t.Fatal("no session log")
	}
	log.Close()
	if names := dirNames(t, filepath.Join(home, "state", "xvmview")); len(names) == 0 {
		t.Error("the session log is not under the Env's XDG_STATE_HOME")
	}
	if c.sshConfig().Home != home {
		t.Errorf("SSH files under %q, want the Env's HOME %q", c.sshConfig().Home, home)
	}
	for _, d := range []string{"c", "d", "s", "r"} {
		if names := dirNames(t, filepath.Join(proc, d)); len(names) > 0 {
			t.Errorf("the process's %s has %v", d, names)
		}
	}
}
