package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/session"
)

// completions runs `xvmview __complete ARGS...` in-process and returns the
// offered names (descriptions cut off) and the directive line.
func completions(t *testing.T, args ...string) (names []string, directive string) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %q: exit %d\n%s%s", args, code, out, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, ":") {
			directive = line
			continue
		}
		name, _, _ := strings.Cut(line, "\t")
		names = append(names, name)
	}
	return names, directive
}

func TestCompleteProfiles(t *testing.T) {
	home, apps := desktopHome(t)
	writeProfile(t, home, "mine", "description = \"my   clock \"\nhost = \"local\"\ncommand = [\"xclock\"]\n")
	if code, out, errOut := runCLI(t, "desktop", "install", "mine", "demo"); code != 0 {
		t.Fatalf("desktop install: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(apps, "xvmview-hand.desktop"), []byte("[Desktop Entry]\nName=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	noFiles := ":4" // cobra.ShellCompDirectiveNoFileComp
	tests := []struct {
		name    string
		args    []string
		want    []string // exactly these, in order
		wantDir string
	}{
		{name: "run", args: []string{"run", ""}, want: []string{"demo", "desktop", "firefox-domu", "mine"}, wantDir: noFiles},
		{name: "run with prefix", args: []string{"run", "de"}, want: []string{"demo", "desktop"}, wantDir: noFiles},
		{name: "run after the profile", args: []string{"run", "demo", ""}, want: nil, wantDir: noFiles},
		{name: "run after --", args: []string{"run", "demo", "--", ""}, want: nil},
		{name: "run after -- and an app argument", args: []string{"run", "mine", "--", "-update", ""}, want: nil},
		{name: "run after a flag", args: []string{"run", "--dry-run", ""}, want: []string{"demo", "desktop", "firefox-domu", "mine"}, wantDir: noFiles},
		{name: "desktop install", args: []string{"desktop", "install", ""}, want: []string{"demo", "desktop", "firefox-domu", "mine"}, wantDir: noFiles},
		{name: "desktop install skips given names", args: []string{"desktop", "install", "mine", "demo", ""}, want: []string{"desktop", "firefox-domu"}, wantDir: noFiles},
		{name: "desktop remove offers installed entries", args: []string{"desktop", "remove", ""}, want: []string{"demo", "mine"}, wantDir: noFiles},
		{name: "desktop subcommands", args: []string{"desktop", ""}, want: []string{"install", "remove"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, dir := completions(t, tc.args...)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("__complete %q offers %q, want %q", tc.args, got, tc.want)
			}
			if tc.wantDir != "" && dir != tc.wantDir {
				t.Errorf("__complete %q ends with directive %q, want %q", tc.args, dir, tc.wantDir)
			}
		})
	}

	t.Run("descriptions", func(t *testing.T) {
		_, out, _ := runCLI(t, "__complete", "run", "mi")
		if !strings.Contains(out, "mine\tmy clock\n") {
			t.Errorf("no one-line description for mine:\n%s", out)
		}
	})
}

func TestCompletionScripts(t *testing.T) {
	cliHome(t)
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		t.Run(shell, func(t *testing.T) {
			code, out, errOut := runCLI(t, "completion", shell)
			if code != 0 || !strings.Contains(out, "__complete") {
				t.Fatalf("completion %s: exit %d, script lacks __complete\n%s\n%s", shell, code, out, errOut)
			}
		})
	}

	t.Run("bash loads it", func(t *testing.T) {
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Skip("bash is missing")
		}
		_, script, _ := runCLI(t, "completion", "bash")
		p := filepath.Join(t.TempDir(), "xvmview.bash")
		if err := os.WriteFile(p, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", `source "$1" && complete -p xvmview`, "bash", p).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "complete -o default -F __start_xvmview xvmview") {
			t.Errorf("complete -p xvmview says:\n%s", out)
		}
	})
}

// TestBashCompletes has bash itself complete `xvmview run de<TAB>` with the
// generated script, which calls this test binary as xvmview.
func TestBashCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is missing")
	}
	home := cliHome(t)
	writeProfile(t, home, "devbox", "host = \"local\"\ncommand = [\"xterm\"]\n")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "xvmview")); err != nil {
		t.Fatal(err)
	}
	_, script, _ := runCLI(t, "completion", "bash")
	p := filepath.Join(t.TempDir(), "xvmview.bash")
	if err := os.WriteFile(p, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) []string {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		// The script needs _get_comp_words_by_ref from the bash-completion
		// package; without it, a stand-in that does what the script asks.
		script := `
if [ -r /usr/share/bash-completion/bash_completion ]; then
	. /usr/share/bash-completion/bash_completion
else
	_get_comp_words_by_ref() {
		cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cword=$COMP_CWORD
		words=("${COMP_WORDS[@]}")
	}
fi
compopt() { :; } # a builtin that only works while bash is completing
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
__start_xvmview xvmview "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`
		cmd := exec.Command(bash, append([]string{"--norc", "--noprofile", "-c", script, "bash", p}, words...)...)
		cmd.Env = append(os.Environ(), "XVMVIEW_TEST_MAIN=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		if os.Getenv("GORACE") == "" {
			cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0") // -race would wait 1s at each exit
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completing %q: %v\n%s", line, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				got = append(got, l)
			}
		}
		return got
	}
	tests := []struct{ line, want string }{
		{"xvmview run de", "demo desktop devbox"},
		{"xvmview run dev", "devbox"},
		{"xvmview desktop install fire", "firefox-domu"},
		{"xvmview desktop ", "install remove"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			if got := strings.Join(complete(tc.line), " "); got != tc.want {
				t.Errorf("bash completes %q to %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

func TestEverydayCompletion(t *testing.T) {
	_, root := everydayHome(t)
	me := os.Getpid()
	writeState(t, root, session.State{ID: "aaaa00000001", Profile: "web", LauncherPID: me, LauncherTime: startTicks(t, me), Display: 7})
	tests := []cliCase{
		{name: "stop offers running sessions", args: []string{"__complete", "stop", ""},
			wantOut: []string{"web\tevery running session", "aaaa00000001\tprofile web, display :7"}, notOut: []string{"demo"}},
		{name: "stop filters by prefix", args: []string{"__complete", "stop", "aa"}, wantOut: []string{"aaaa00000001"}, notOut: []string{"web\t"}},
		{name: "check offers profiles", args: []string{"__complete", "check", ""}, wantOut: []string{"demo"}},
		{name: "trust offers profiles", args: []string{"__complete", "trust", ""}, wantOut: []string{"demo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
