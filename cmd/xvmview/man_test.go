package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// regenerate is how to bring docs/man up to date.
const regenerate = "run `go generate ./cmd/xvmview` (or `go run ./cmd/xvmview __man docs/man`) to update docs/man"

// TestManPages regenerates the man pages and compares them with the ones in
// docs/man, so they cannot drift from the commands.
func TestManPages(t *testing.T) {
	cliHome(t)
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "__man", dir); code != 0 {
		t.Fatalf("__man: exit %d\n%s%s", code, out, errOut)
	}
	made, err := manPages(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"xvmview.1", "xvmview-run.1", "xvmview-desktop-install.1", "xvmview-completion-bash.1"} {
		if !slices.Contains(made, want) {
			t.Errorf("__man did not make %s (made %q)", want, made)
		}
	}
	if slices.Contains(made, "xvmview-__man.1") || slices.Contains(made, "xvmview-help.1") {
		t.Errorf("__man made pages for hidden commands: %q", made)
	}
	committed, err := manPages(filepath.Join("..", "..", "docs", "man"))
	if err != nil {
		t.Fatalf("%v: %s", err, regenerate)
	}
	for _, name := range made {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", "docs", "man", name))
		switch {
		case os.IsNotExist(err):
			t.Errorf("docs/man/%s is missing: %s", name, regenerate)
		case err != nil:
			t.Error(err)
		case string(got) != string(want):
			t.Errorf("docs/man/%s is stale: %s", name, regenerate)
		}
	}
	for _, name := range committed {
		if !slices.Contains(made, name) {
			t.Errorf("docs/man/%s is for a command that is gone: %s", name, regenerate)
		}
	}

	// Generating again into the same directory changes nothing and leaves
	// no temporary files; a page of a command that is gone is removed.
	stale := filepath.Join(dir, "xvmview-gone.1")
	if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "__man", dir); code != 0 {
		t.Fatalf("__man again: exit %d\n%s%s", code, out, errOut)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if !slices.Equal(names, made) {
		t.Errorf("after generating again the directory has %q, want %q", names, made)
	}
	if code, _, errOut := runCLI(t, "__man"); code != 2 || !strings.Contains(errOut, "directory") {
		t.Errorf("__man without a directory: exit %d\n%s", code, errOut)
	}
}
