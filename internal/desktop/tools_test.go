package desktop

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/profiles"
)

// validate runs desktop-file-validate on the entry e written to dir and
// fails the test on any error or warning it reports (hints are allowed).
func validate(t *testing.T, tool, dir string, e Entry) {
	t.Helper()
	var b bytes.Buffer
	if _, err := e.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, FileName(e.Profile))
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, p).CombinedOutput()
	var bad []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ": error: ") || strings.Contains(line, ": warning: ") {
			bad = append(bad, line)
		}
	}
	if err != nil || len(bad) > 0 {
		t.Errorf("desktop-file-validate %s: %v\n%s\nthe file:\n%s", p, err, out, b.String())
	}
}

// TestValidate checks every kind of entry New makes with the reference
// validator of freedesktop.org: the built-in profiles, odd descriptions,
// every registered category, and xvmview at nasty paths.
func TestValidate(t *testing.T) {
	tool := testguest.NeedProgram(t, "desktop-file-validate", "desktop-file-utils")
	dir := t.TempDir()

	names, err := fsGlob()
	if err != nil {
		t.Fatal(err)
	}
	var ps []profile.Profile
	for _, n := range names {
		ps = append(ps, demoProfile(t, n))
	}
	local := profile.Profile{Name: "odd.name_2-x", Host: profile.LocalHost, Command: []string{"xterm"}, Title: "t"}
	ps = append(ps,
		with(local, func(p *profile.Profile) {
			p.Description = ` Spaces; "quotes", back\slash, $HOME, %f, 'single' & <tags> `
		}),
		with(local, func(p *profile.Profile) { p.Description = "" }),
		with(local, func(p *profile.Profile) { p.Host = "web;evil"; p.Name = "semicolon-host" }),
		with(local, func(p *profile.Profile) { p.Icon = "/usr/share/pixmaps/a b.png" }),
		with(local, func(p *profile.Profile) { p.Name = "all-categories"; p.Categories = allCategories() }),
		with(local, func(p *profile.Profile) { p.Name = "extension"; p.Categories = []string{"Network", "X-Xen"} }),
	)
	for _, p := range ps {
		t.Run("profile "+p.Name, func(t *testing.T) {
			e, err := New(p, "/usr/bin/xvmview")
			if err != nil {
				t.Fatal(err)
			}
			validate(t, tool, dir, e)
		})
	}
	for _, nb := range nastyBinaries {
		t.Run("binary "+nb.name, func(t *testing.T) {
			e, err := New(demoProfile(t, "demo"), nb.path)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, tool, dir, e)
		})
	}
	t.Run("control characters in values", func(t *testing.T) {
		e, err := New(local, "/usr/bin/xvmview")
		if err != nil {
			t.Fatal(err)
		}
		e.Name = "line\none\ttab\rcr\x01\\"
		e.Comment = "\x7f"
		e.Keywords = append(e.Keywords, "a;b", "c\nd")
		validate(t, tool, dir, e)
	})
}

func fsGlob() ([]string, error) {
	m, err := profiles.FS.ReadDir(".")
	var names []string
	for _, de := range m {
		if n, ok := strings.CutSuffix(de.Name(), ".toml"); ok {
			names = append(names, n)
		}
	}
	return names, err
}

func allCategories() []string {
	var cs []string
	for c := range registered {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

// TestLaunch has GLib's launcher (gio launch) start an entry for xvmview at
// nasty paths, with a stand-in xvmview that reports its argv, and checks
// that it ran with exactly the path, "run" and the profile name.
func TestLaunch(t *testing.T) {
	gio := testguest.NeedProgram(t, "gio", "libglib2.0-bin")
	for _, nb := range nastyBinaries {
		if strings.Contains(nb.path, "%") {
			// GLib looks for the program before it expands "%%" to
			// "%", so it never finds a path with "%" in it.
			continue
		}
		t.Run(nb.name, func(t *testing.T) {
			root := t.TempDir()
			bin := filepath.Join(root, nb.path)
			if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
				t.Fatal(err)
			}
			fifo := filepath.Join(root, "argv")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			script := "#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\" > '" + fifo + "'\n"
			if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			e, err := New(demoProfile(t, "demo"), bin)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "applications")
			p, err := Install(dir, e)
			if err != nil {
				t.Fatal(err)
			}

			got := make(chan []byte, 1)
			go func() {
				f, err := os.Open(fifo) // blocks until the stand-in opens it
				if err != nil {
					got <- []byte(err.Error())
					return
				}
				defer f.Close()
				b, _ := io.ReadAll(f)
				got <- b
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// unblock ends the reader when the stand-in never ran.
			unblock := func() {
				if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			}
			out, err := exec.CommandContext(ctx, gio, "launch", p).CombinedOutput()
			if err != nil {
				unblock()
				t.Fatalf("gio launch %s: %v\n%s", p, err, out)
			}
			var b []byte
			select {
			case b = <-got:
			case <-ctx.Done():
				unblock()
				t.Fatalf("the stand-in xvmview did not run; gio said:\n%s", out)
			}
			argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
			want := []string{bin, "run", "demo"}
			if !slices.Equal(argv, want) {
				t.Errorf("launched as %q, want %q", argv, want)
			}
		})
	}
}
