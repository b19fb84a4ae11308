package main

import (
	"bytes"
	"context"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// everydayHome is cliHome with the runtime directory created, so that the
// sessions live under HOME/run/xvmview.
func everydayHome(t *testing.T) (home, root string) {
	t.Helper()
	home = cliHome(t)
	if err := os.Mkdir(filepath.Join(home, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home, filepath.Join(home, "run", "xvmview")
}

type cliCase struct {
	name     string
	args     []string
	env      map[string]string
	wantCode int
	wantOut  []string
	wantErr  []string
	notOut   []string
}

func (tc cliCase) run(t *testing.T) {
	t.Helper()
	for k, v := range tc.env {
		t.Setenv(k, v)
	}
	code, out, errOut := runCLI(t, tc.args...)
	if code != tc.wantCode {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out, errOut)
	}
	for _, w := range tc.wantOut {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
	for _, w := range tc.notOut {
		if strings.Contains(out, w) {
			t.Errorf("stdout has %q:\n%s", w, out)
		}
	}
	for _, w := range tc.wantErr {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

// runCLI runs xvmview in-process with a private home and config.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, Env{Stdout: &o, Stderr: &e, Getenv: os.Getenv, Environ: os.Environ})
	return code, o.String(), e.String()
}

func cliHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	if err := os.MkdirAll(filepath.Join(home, ".config", "xvmview", "profiles"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

func writeProfile(t *testing.T, home, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, ".config", "xvmview", "profiles", name+".toml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cliProfiles is cliHome with a local, a broken and a remote profile.
func cliProfiles(t *testing.T) string {
	t.Helper()
	home := cliHome(t)
	writeProfile(t, home, "mine", "description = \"my own\"\nhost = \"local\"\ncommand = [\"xclock\"]\n")
	writeProfile(t, home, "broken", "host = \"local\"\ncomand = [\"xclock\"]\n")
	writeProfile(t, home, "remote", "host = \"web\"\ncommand = [\"firefox\"]\nport = 2222\nuser = \"alice\"\n")
	return home
}

func TestCLI(t *testing.T) {
	cliProfiles(t)
	tests := []cliCase{
		{name: "version", args: []string{"version"}, wantOut: []string{"xvmview "}},
		{name: "help", args: []string{"--help"}, wantOut: []string{"xvmview run demo", "Available Commands"}},
		{name: "unknown flag", args: []string{"run", "demo", "--frobnicate"}, wantCode: 2, wantErr: []string{"unknown flag: --frobnicate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// TestImports: the command layer parses and prints; the launch, the checks
// and the host keys are the library's. It talks to session, profile and
// desktop only (plus what printing needs: guesttext, through which every
// line it prints passes).
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/xvmview/xvmview/internal/session":   true,
		"github.com/xvmview/xvmview/internal/guesttext": true,
		"github.com/xvmview/xvmview/internal/profile":   true,
		"github.com/xvmview/xvmview/internal/desktop":   true,
		"github.com/spf13/cobra":                        true,
		"github.com/spf13/cobra/doc":                    true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, ".") && !allowed[path] {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
