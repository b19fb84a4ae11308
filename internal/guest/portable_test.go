package guest

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/testguest"
)

// loginShells are the shells sshd may hand a command to (the guest user's
// login shell): every one of them must run what Portable makes as /bin/sh
// would run the script. Missing ones are skipped, except under CI=true
// where scripts/install-deps.sh installs them all.
func loginShells(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, sh := range []string{"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh"} {
		p, err := exec.LookPath(sh)
		if err != nil {
			if testguest.CI() {
				testguest.Missing(t, "login shell "+sh, "run scripts/install-deps.sh")
			}
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Skip("no shell found")
	}
	return out
}

// runLogin runs cmd as sshd does: SHELL -c CMD.
func runLogin(t testing.TB, shell, cmd string) []byte {
	t.Helper()
	c := exec.Command(shell, "-c", cmd)
	c.Env = append(os.Environ(), "HOME="+os.TempDir())
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v", shell, cmd, err)
	}
	return out
}

func TestPortableAlphabet(t *testing.T) {
	// Every byte but NUL, with the bytes that trip shells up next to digits
	// that could extend an octal escape.
	var b strings.Builder
	for c := 1; c < 256; c++ {
		b.WriteByte(byte(c))
		b.WriteString("7")
	}
	s := b.String()
	p := Portable("printf '%s' " + Quote(s))
	arg := strings.TrimPrefix(p, portableFirst)
	for i := 0; i < len(arg)-1; i++ {
		if c := arg[i]; !portableByte(c) && c != '\\' {
			t.Fatalf("Portable's argument holds %q at %d", c, i)
		}
		if arg[i] == '\\' && arg[i+1] == '\\' {
			t.Fatalf("Portable's argument holds \\\\ at %d (fish reads it as one backslash)", i)
		}
	}
	for _, sh := range loginShells(t) {
		if got := runLogin(t, sh, p); string(got) != s {
			t.Errorf("%s: got %q, want %q", sh, got, s)
		}
	}
}

// TestPortableCommand runs Command's output for nasty environment values and
// arguments through Portable in every login shell: the program sees exactly
// those bytes, and the exit status comes through.
func TestPortableCommand(t *testing.T) {
	env := []string{"XVM_A=it's $(id) `x` \\ \n end !! ()", "XVM_B="}
	args := []string{"", "a b", "'", "--", "$HOME", "\n", "ü\xff", "it's a \\ $(x) `y` \"q\" \\'", "(){}", "-e", "%s%d\\n"}
	argv := append([]string{"sh", "-c", `printf '%s\0' "$XVM_A" "${XVM_B-unset}" "$@"; exit 7`, "sh"}, args...)
	cmd, err := Command(env, argv)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"it's $(id) `x` \\ \n end !! ()", ""}, args...)
	for _, sh := range loginShells(t) {
		t.Run(sh, func(t *testing.T) {
			c := exec.Command(sh, "-c", Portable(cmd))
			out, err := c.Output()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
				t.Fatalf("%s: exit %v, want status 7", sh, err)
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

// TestPortableRandom: random scripts of shell metacharacters and high bytes
// come out of every login shell byte for byte.
func TestPortableRandom(t *testing.T) {
	const alphabet = "'\"\\$`!*?[]{}()<>|&;#~= \t\n-%@:,+^aZ09\xc3\xa4\xff"
	r := rand.New(rand.NewPCG(3, 4))
	var in []string
	for range 200 {
		b := make([]byte, r.IntN(16))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = byte(1 + r.IntN(255))
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		in = append(in, string(b))
	}
	var script strings.Builder
	script.WriteString(`printf '%s\0'`)
	for _, s := range in {
		script.WriteString(" " + Quote(s))
	}
	want := strings.Join(in, "\x00") + "\x00"
	for _, sh := range loginShells(t) {
		if got := runLogin(t, sh, Portable(script.String())); string(got) != want {
			t.Errorf("%s: got %q, want %q", sh, got, want)
		}
	}
}

// TestPortableLong: a script longer than one shell word may be (csh:
// "Word too long." at about 10 KB; FuzzQuote found it) travels as several
// words and comes out of every login shell byte for byte.
func TestPortableLong(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 6<<10; i++ {
		b.WriteString("q\b\xfe\x1e$'\"\\%\n")
		b.WriteByte(byte(1 + i%255))
	}
	s := b.String()
	p := Portable("printf '%s' " + Quote(s))
	if n := strings.Count(p, "' '"); n < 2 {
		t.Fatalf("a %d-byte script went as %d words", len(s), n+1)
	}
	for _, sh := range loginShells(t) {
		if got := runLogin(t, sh, p); string(got) != s {
			t.Errorf("%s: got %d bytes, want %d (first difference near %d)", sh, len(got), len(s), firstDiff(string(got), s))
		}
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
