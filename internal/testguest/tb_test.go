package testguest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOneCIRule: "skip, or fail when CI=true" is decided in one place
// (CI, Missing, NeedProgram); a test that reads CI itself may decide it
// differently.
func TestOneCIRule(t *testing.T) {
	var files []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) < 50 {
		t.Fatalf("found %d Go files (err %v)", len(files), err)
	}
	for _, f := range files {
		if filepath.Base(f) == "tb.go" && filepath.Base(filepath.Dir(f)) == "testguest" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "Getenv("+`"CI"`+")") {
			t.Errorf("%s reads CI itself: use testguest.Missing, NeedProgram or CI", f)
		}
	}
}
