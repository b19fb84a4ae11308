package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// desktopHome is cliHome with XDG_DATA_HOME set; it returns the home and
// the applications directory.
func desktopHome(t *testing.T) (home, apps string) {
	t.Helper()
	home = cliHome(t)
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, ".local", "share"))
	return home, filepath.Join(home, ".local", "share", "applications")
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestDesktopCLI(t *testing.T) {
	home, apps := desktopHome(t)
	writeProfile(t, home, "mine", "description = \"my own clock\"\nhost = \"local\"\ncommand = [\"xclock\"]\n")
	writeProfile(t, home, "broken", "host = \"local\"\ncomand = [\"xclock\"]\n")
	writeProfile(t, home, "hand", "host = \"local\"\ncommand = [\"xclock\"]\n")
	writeProfile(t, home, "badcat", "host = \"local\"\ncommand = [\"xclock\"]\ncategories = [\"Clocks\"]\n")
	if err := os.MkdirAll(apps, 0o700); err != nil {
		t.Fatal(err)
	}
	foreign := map[string]string{
		"firefox.desktop":      "[Desktop Entry]\nType=Application\nName=Firefox\nExec=firefox\n",
		"xvmview-hand.desktop": "[Desktop Entry]\nType=Application\nName=Mine\nExec=xvmview run hand\n",
	}
	for n, s := range foreign {
		if err := os.WriteFile(filepath.Join(apps, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, err = filepath.EvalSymlinks(self)
	if err != nil {
		t.Fatal(err)
	}

	// The steps build on each other.
	steps := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   []string
		wantErr   []string
		wantFiles []string // the applications directory afterwards
	}{
		{name: "no names", args: []string{"desktop", "install"}, wantCode: 2, wantErr: []string{"--all", "xvmview: hint: see 'xvmview --help'"}},
		{name: "names and --all", args: []string{"desktop", "install", "mine", "--all"}, wantCode: 2, wantErr: []string{"not both"}},
		{name: "path as name", args: []string{"desktop", "install", "../../evil"}, wantCode: 2, wantErr: []string{"not a path"}},
		{name: "name with space", args: []string{"desktop", "install", "a b"}, wantCode: 2, wantErr: []string{`has " "`}},
		{name: "unknown subcommand", args: []string{"desktop", "frob"}, wantCode: 2, wantErr: []string{`unknown command "frob"`}},
		{name: "help", args: []string{"desktop"}, wantOut: []string{"install", "remove", "XDG_DATA_HOME"}},
		{name: "install one", args: []string{"desktop", "install", "mine"}, wantOut: []string{"installed " + filepath.Join(apps, "xvmview-mine.desktop")},
			wantFiles: []string{"firefox.desktop", "xvmview-hand.desktop", "xvmview-mine.desktop"}},
		{name: "install unknown", args: []string{"desktop", "install", "nosuch", "demo"}, wantCode: 1,
			wantErr: []string{`profile "nosuch" not found`}, wantOut: []string{"installed " + filepath.Join(apps, "xvmview-demo.desktop")},
			wantFiles: []string{"firefox.desktop", "xvmview-demo.desktop", "xvmview-hand.desktop", "xvmview-mine.desktop"}},
		{name: "install over a foreign file", args: []string{"desktop", "install", "hand"}, wantCode: 1, wantErr: []string{"not written by xvmview", "left alone"}},
		{name: "install all", args: []string{"desktop", "install", "--all"}, wantCode: 1,
			wantOut: []string{"xvmview-desktop.desktop", "xvmview-firefox-domu.desktop", "xvmview-mine.desktop", "xvmview-demo.desktop"},
			wantErr: []string{"skipped broken", "broken.toml:2", `category "Clocks" is not registered`, "xvmview-hand.desktop was not written by xvmview"},
			wantFiles: []string{"firefox.desktop", "xvmview-demo.desktop", "xvmview-desktop.desktop", "xvmview-firefox-domu.desktop",
				"xvmview-hand.desktop", "xvmview-mine.desktop"}},
		{name: "remove foreign", args: []string{"desktop", "remove", "hand"}, wantCode: 1, wantErr: []string{"not written by xvmview", "left alone"}},
		{name: "remove not installed", args: []string{"desktop", "remove", "nosuch"}, wantCode: 1, wantErr: []string{"has no menu entry"}},
		{name: "remove one", args: []string{"desktop", "remove", "demo"}, wantOut: []string{"removed " + filepath.Join(apps, "xvmview-demo.desktop")},
			wantFiles: []string{"firefox.desktop", "xvmview-desktop.desktop", "xvmview-firefox-domu.desktop", "xvmview-hand.desktop", "xvmview-mine.desktop"}},
		{name: "remove all", args: []string{"desktop", "remove", "--all"}, wantOut: []string{"removed ", "xvmview-mine.desktop", "xvmview-firefox-domu.desktop"},
			wantFiles: []string{"firefox.desktop", "xvmview-hand.desktop"}},
		{name: "remove all again", args: []string{"desktop", "remove", "--all"}, wantErr: []string{"has no menu entries"},
			wantFiles: []string{"firefox.desktop", "xvmview-hand.desktop"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, st.args...)
			if code != st.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, st.wantCode, out, errOut)
			}
			for _, w := range st.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range st.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if st.wantFiles != nil {
				if got := dirNames(t, apps); !slices.Equal(got, st.wantFiles) {
					t.Errorf("applications directory has %q, want %q", got, st.wantFiles)
				}
			}
			if st.name == "install one" {
				b, err := os.ReadFile(filepath.Join(apps, "xvmview-mine.desktop"))
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range []string{"\nName=my own clock\n", "\nExec=" + self + " run mine\n", "\nTryExec=" + self + "\n",
					"\nStartupWMClass=xvmview-mine\n", "\nX-Xvmview-Profile=mine\n"} {
					if !strings.Contains(string(b), w) {
						t.Errorf("entry lacks %q:\n%s", w, b)
					}
				}
				if tool, err := exec.LookPath("desktop-file-validate"); err == nil {
					if out, err := exec.Command(tool, filepath.Join(apps, "xvmview-mine.desktop")).CombinedOutput(); err != nil {
						t.Errorf("desktop-file-validate: %v\n%s", err, out)
					}
				}
			}
		})
	}
	for n, s := range foreign {
		b, err := os.ReadFile(filepath.Join(apps, n))
		if err != nil || string(b) != s {
			t.Errorf("%s changed: %q, %v", n, b, err)
		}
	}
}
