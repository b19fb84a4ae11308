package guest

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// shells are the POSIX shells quoting must work in: sh is what the wrapper
// runs, bash is the usual login shell sshd hands commands to.
func shells(t testing.TB) []string {
	var out []string
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/usr/bin/fish"} {
		if _, err := exec.LookPath(sh); err == nil {
			out = append(out, sh)
		}
	}
	if len(out) == 0 {
		t.Skip("no POSIX shell found")
	}
	return out
}

// evalPrintf runs `printf '%s\0' Q1 Q2 ...` in shell and returns the NUL
// separated words the shell printed.
func evalPrintf(t testing.TB, shell string, quoted []string) []string {
	t.Helper()
	script := `printf '%s\0' ` + strings.Join(quoted, " ")
	out, err := exec.Command(shell, "-c", script).Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v", shell, script, err)
	}
	words := strings.Split(string(out), "\x00")
	return words[:len(words)-1]
}

var quoteTests = []struct {
	name, in, want string
}{
	{"empty", "", "''"},
	{"plain", "xterm", "xterm"},
	{"path", "/usr/bin/x-terminal-emulator", "/usr/bin/x-terminal-emulator"},
	{"display", "10.0.0.1:5", "10.0.0.1:5"},
	{"option", "--geometry=80x24+0+0", "'--geometry=80x24+0+0'"},
	{"space", "a b", "'a b'"},
	{"single quote", "it's", `'it'\''s'`},
	{"only quotes", "''", `''\'''\'''`},
	{"double quote", `say "hi"`, `'say "hi"'`},
	{"dollar", "$HOME", "'$HOME'"},
	{"command substitution", "$(rm -rf ~)", "'$(rm -rf ~)'"},
	{"backtick", "`id`", "'`id`'"},
	{"backslash", `a\b\`, `'a'\\'b'\\''`},
	{"fish escapes", `a\'; rm -rf ~ #`, `'a'\\''\''; rm -rf ~ #'`},
	{"newline", "a\nb\n", "'a\nb\n'"},
	{"glob", "*", "'*'"},
	{"tilde", "~", "'~'"},
	{"comment", "#x", "'#x'"},
	{"assignment", "A=b", "'A=b'"},
	{"semicolon", "a;b", "'a;b'"},
	{"pipe and redirect", "a|b>c<d&e", "'a|b>c<d&e'"},
	{"braces", "{a,b}", "'{a,b}'"},
	{"history", "!!", "'!!'"},
	{"unicode", "grüße 日本", "'grüße 日本'"},
	{"invalid utf8", "\xff\xfe", "'\xff\xfe'"},
	{"control", "\x01\t\x7f", "'\x01\t\x7f'"},
}

func TestQuote(t *testing.T) {
	for _, tt := range quoteTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.want {
				t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	// The shell must read every result back as the input.
	var in, quoted []string
	for _, tt := range quoteTests {
		in = append(in, tt.in)
		quoted = append(quoted, Quote(tt.in))
	}
	for _, sh := range shells(t) {
		t.Run(sh, func(t *testing.T) {
			got := evalPrintf(t, sh, quoted)
			if len(got) != len(in) {
				t.Fatalf("%s printed %d words, want %d: %q", sh, len(got), len(in), got)
			}
			for i := range in {
				if got[i] != in[i] {
					t.Errorf("%s read Quote(%q) = %s as %q", sh, in[i], quoted[i], got[i])
				}
			}
		})
	}
}

// TestQuoteRandom round-trips random byte strings, biased towards shell
// metacharacters, through real shells: one shell run per shell for all.
func TestQuoteRandom(t *testing.T) {
	const alphabet = "'\"\\$`!*?[]{}()<>|&;#~= \t\n-%@:,+^aZ09\xc3\xa4\xff"
	r := rand.New(rand.NewPCG(1, 2))
	var in, quoted []string
	for range 500 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = byte(1 + r.IntN(255))
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		in = append(in, string(b))
		quoted = append(quoted, Quote(string(b)))
	}
	for _, sh := range shells(t) {
		got := evalPrintf(t, sh, quoted)
		if len(got) != len(in) {
			t.Fatalf("%s printed %d words, want %d", sh, len(got), len(in))
		}
		for i := range in {
			if got[i] != in[i] {
				t.Errorf("%s read Quote(%q) = %s as %q", sh, in[i], quoted[i], got[i])
			}
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, tt := range quoteTests {
		f.Add(tt.in)
	}
	shs := shells(f)
	var logins []string
	for _, sh := range loginShells(f) {
		if strings.HasSuffix(sh, "csh") || strings.HasSuffix(sh, "fish") {
			logins = append(logins, sh)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Skip("NUL cannot be a shell word")
		}
		q := Quote(s)
		for _, sh := range shs {
			got := evalPrintf(t, sh, []string{q})
			if len(got) != 1 || got[0] != s {
				t.Errorf("%s read Quote(%q) = %s as %q", sh, s, q, got)
			}
		}
		// The same word sent as sshd sends it, to the login shells least
		// like sh.
		for _, sh := range logins {
			if got := runLogin(t, sh, Portable("printf '%s' "+q)); string(got) != s {
				t.Errorf("%s read Portable(printf %s) as %q, want %q", sh, q, got, s)
			}
		}
	})
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		argv []string
		want string
	}{
		{"argv only", nil, []string{"xterm", "-geometry", "80x24+0+0"}, "xterm -geometry 80x24+0+0"},
		{"env", []string{"DISPLAY=10.0.0.1:5"}, []string{"xterm"}, "env 'DISPLAY=10.0.0.1:5' xterm"},
		{"env with metacharacters", []string{"A=$(id) 'x'", "B="}, []string{"a b"}, `env 'A=$(id) '\''x'\''' 'B=' 'a b'`},
		{"empty argument", nil, []string{"printf", ""}, "printf ''"},
		{"program with = without env", nil, []string{"A=b"}, "'A=b'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Command(tt.env, tt.argv)
			if err != nil {
				t.Fatalf("Command(%q, %q): %v", tt.env, tt.argv, err)
			}
			if got != tt.want {
				t.Errorf("Command(%q, %q) = %q, want %q", tt.env, tt.argv, got, tt.want)
			}
		})
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		argv    []string
		wantErr string
	}{
		{"empty argv", nil, nil, "empty command"},
		{"env without =", []string{"DISPLAY"}, []string{"x"}, "invalid environment entry"},
		{"env name with space", []string{"A B=c"}, []string{"x"}, "invalid environment entry"},
		{"env name starting with digit", []string{"1A=c"}, []string{"x"}, "invalid environment entry"},
		{"env name with dash", []string{"A-B=c"}, []string{"x"}, "invalid environment entry"},
		{"env empty name", []string{"=c"}, []string{"x"}, "invalid environment entry"},
		{"env name injection", []string{"A;rm -rf /=c"}, []string{"x"}, "invalid environment entry"},
		{"NUL in value", []string{"A=b\x00c"}, []string{"x"}, "NUL"},
		{"NUL in argument", nil, []string{"x", "a\x00"}, "NUL"},
		{"program with = and env", []string{"A=b"}, []string{"C=d"}, "contains '='"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Command(tt.env, tt.argv)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Command(%q, %q) = %q, %v; want error containing %q", tt.env, tt.argv, got, err, tt.wantErr)
			}
		})
	}
	// Values may be secrets: they stay out of the error.
	_, err := Command([]string{"1BAD=secret-value"}, []string{"x"})
	if err == nil || strings.Contains(err.Error(), "secret-value") {
		t.Errorf("error %v shows the value", err)
	}
}

// TestCommandRunsInShell runs Command's output in real shells: the program
// must see exactly the environment value and the arguments.
func TestCommandRunsInShell(t *testing.T) {
	env := []string{"XVM_A=it's $(id) `x` \\ \n end", "XVM_B="}
	args := []string{"", "a b", "'", "--", "$HOME", "\n", "ü\xff"}
	argv := append([]string{"sh", "-c", `printf '%s\0' "$XVM_A" "${XVM_B-unset}" "$@"`, "sh"}, args...)
	cmd, err := Command(env, argv)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"it's $(id) `x` \\ \n end", ""}, args...)
	for _, sh := range shells(t) {
		t.Run(sh, func(t *testing.T) {
			out, err := exec.Command(sh, "-c", cmd).Output()
			if err != nil {
				t.Fatalf("%s -c %q: %v", sh, cmd, err)
			}
			got := bytes.Split(out, []byte{0})
			got = got[:len(got)-1]
			if len(got) != len(want) {
				t.Fatalf("got %d words %q, want %q", len(got), got, want)
			}
			for i := range want {
				if string(got[i]) != want[i] {
					t.Errorf("word %d = %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}
