package session

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/profile"
)

func checkDirs(t *testing.T, profiles map[string]string) profile.Dirs {
	t.Helper()
	dir := t.TempDir()
	for name, body := range profiles {
		must(t, os.WriteFile(filepath.Join(dir, name+".toml"), []byte(body), 0o600))
	}
	return profile.Dirs{User: dir}
}

// summary is "STATUS name" per result, for comparing the sequence.
func summary(rs []CheckResult) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString([]string{"ok", "FAIL", "skip"}[r.Status] + " " + r.Name + "\n")
	}
	return b.String()
}

// TestCheck: which checks a profile gets, in order; what a failure skips;
// failures carry typed errors (the CLI words them and adds the hint).
func TestCheck(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing installed
	t.Setenv("HOME", t.TempDir())
	dirs := checkDirs(t, map[string]string{
		"loc":    "host = \"local\"\ncommand = [\"xclock\"]\nwindow_manager = [\"twm\"]\n",
		"broken": "host = \"local\"\ncomand = [\"xclock\"]\n",
		"gone":   "host = \"127.0.0.1\"\nport = 1\ncommand = [\"xterm\"]\n",
	})
	env := CheckEnv{Dirs: dirs}

	var progressed []CheckResult
	env.Progress = func(r CheckResult) { progressed = append(progressed, r) }
	rs := Check(context.Background(), "loc", env)
	if got, want := summary(rs), "FAIL Xephyr\nFAIL host display\nok profile\nFAIL command\nFAIL window manager\n"; got != want {
		t.Errorf("local profile:\n%s\nwant:\n%s", got, want)
	}
	if summary(progressed) != summary(rs) {
		t.Errorf("Progress saw:\n%s\nCheck returned:\n%s", summary(progressed), summary(rs))
	}
	var nf *XephyrNotFoundError
	var pn *ProgramNotFoundError
	switch {
	case !errors.As(rs[0].Err, &nf) || rs[0].Facts != "not found in PATH":
		t.Errorf("Xephyr: %+v, want *XephyrNotFoundError", rs[0])
	case !errors.As(rs[1].Err, new(NoDisplayError)):
		t.Errorf("host display: %+v, want NoDisplayError", rs[1])
	case !errors.As(rs[4].Err, &pn) || pn.Program != "twm" || pn.Key != "window_manager" || pn.Host != "":
		t.Errorf("window manager: %+v, want *ProgramNotFoundError for twm here", rs[4])
	}

	rs = Check(context.Background(), "broken", env)
	if got, want := summary(rs), "FAIL Xephyr\nFAIL host display\nFAIL profile\nskip guest and commands\n"; got != want {
		t.Errorf("broken profile:\n%s\nwant:\n%s", got, want)
	}
	if pe := new(profile.Error); !errors.As(rs[2].Err, &pe) || rs[3].Facts != "the profile did not load" {
		t.Errorf("broken profile: %+v, %+v", rs[2], rs[3])
	}

	rs = Check(context.Background(), "gone", env)
	want := "FAIL Xephyr\nFAIL host display\nok profile\nok ssh settings\nok keys\nFAIL guest reachable\nskip host key\nskip login\n" +
		"skip login shell\nskip xauth on guest\nskip command on guest\nskip port forwarding\n"
	if got := summary(rs); got != want {
		t.Errorf("unreachable guest:\n%s\nwant:\n%s", got, want)
	}
	var ue *UnreachableError
	if !errors.As(rs[5].Err, &ue) || ue.Addr != "127.0.0.1:1" {
		t.Errorf("guest reachable: %+v, want *UnreachableError for 127.0.0.1:1", rs[5])
	}
	if !strings.HasPrefix(rs[3].Facts, "127.0.0.1 = ") || !strings.HasSuffix(rs[3].Facts, "@127.0.0.1:1") {
		t.Errorf("ssh settings: %+v, want the target", rs[3])
	}
	for _, r := range rs[6:] {
		if r.Facts != "the guest did not answer" || r.Err != nil {
			t.Errorf("%s: %+v, want skipped because the guest did not answer", r.Name, r)
		}
	}
}

// TestProgramFacts: what the guest printed for `command -v` (read through
// headBuffer) stays on its check's line, cannot paint the terminal and is
// capped.
func TestProgramFacts(t *testing.T) {
	tests := []struct{ out, want string }{
		{"/usr/bin/xauth\n", "/usr/bin/xauth"},
		{"/bin/x\nok   login: forged\n", "/bin/x^Jok   login: forged"},
		{"\x1b]0;title\a/usr/bin/x", "^[]0;title^G/usr/bin/x"},
		{strings.Repeat("a", 10000) + "\n", ""}, // only the cap is checked
	}
	for _, tt := range tests {
		var h headBuffer
		if _, err := io.WriteString(&h, tt.out); err != nil {
			t.Fatal(err)
		}
		got := h.line()
		if strings.ContainsAny(got, "\n\r\x1b\a") {
			t.Errorf("what the guest printed (%q) = %q: a control passed", tt.out, got)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("what the guest printed (%q) = %q, want %q", tt.out, got, tt.want)
		}
		if len(got) > guesttext.LineMax {
			t.Errorf("the line of %d bytes is %d bytes long", len(tt.out), len(got))
		}
	}
}
