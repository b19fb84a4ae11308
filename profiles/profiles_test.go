package profiles_test

import (
	"bytes"
	"io/fs"
	"os/exec"
	"slices"
	"testing"

	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/profiles"
)

func TestShippedProfilesParse(t *testing.T) {
	files, err := fs.Glob(profiles.FS, "*.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"demo.toml", "desktop.toml", "firefox-domu.toml"} {
		if !slices.Contains(files, want) {
			t.Errorf("profiles.FS has no %s (has %q)", want, files)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			name := f[:len(f)-len(".toml")]
			p, err := profile.Load(name, profile.Dirs{Embedded: profiles.FS})
			if err != nil {
				t.Fatal(err)
			}
			if p.Description == "" {
				t.Errorf("%s has no description", f)
			}
		})
	}
}

// TestFirefoxDomuTitle keeps the comment in firefox-domu.toml that shows the
// default title true.
func TestFirefoxDomuTitle(t *testing.T) {
	data, err := profiles.FS.ReadFile("firefox-domu.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse("firefox-domu", "firefox-domu.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	const want = "[firefox-domu] firefox on web-domu"
	if p.Title != want {
		t.Errorf("default title = %q, want %q as its comment says", p.Title, want)
	}
	if !bytes.Contains(data, []byte(want)) {
		t.Errorf("firefox-domu.toml does not show its default title %q", want)
	}
}

// TestDemoRunsHere checks that the README demo only needs what is on a
// Debian desktop with x11-apps and twm: a local profile whose programs are
// installed.
func TestDemoRunsHere(t *testing.T) {
	p, err := profile.Load("demo", profile.Dirs{Embedded: profiles.FS})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Local() {
		t.Errorf("demo host = %q, want %q", p.Host, profile.LocalHost)
	}
	for _, argv := range [][]string{p.Command, p.WindowManager} {
		if len(argv) == 0 {
			t.Errorf("demo has an empty command or no window manager: %+v", p)
			continue
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			testguest.Missing(t, "program "+argv[0]+", which the demo runs", "run scripts/install-deps.sh")
		}
	}
}
