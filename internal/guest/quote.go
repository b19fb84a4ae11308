package guest

import (
	"fmt"
	"regexp"
	"strings"
)

// Quote returns s quoted for a POSIX shell (sh, dash, bash, ksh, zsh): the
// shell reads the result back as exactly the bytes of s, whatever they are
// (quotes, newlines, $, `, \, non-UTF-8 bytes). The empty string becomes a pair of single quotes.
// Single quotes and backslashes are written outside the single-quoted runs
// (as \' and \\), so a fish login shell, which treats \' and \\ inside
// single quotes as escapes, reads the same bytes too.
// Strings made only of characters that are never special stay as they are,
// which keeps printed commands readable. A NUL byte cannot be carried by any
// shell word; Command rejects it.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isPlain(s) {
		return s
	}
	return "'" + quoteRepl.Replace(s) + "'"
}

var quoteRepl = strings.NewReplacer(`'`, `'\''`, `\`, `'\\'`)

// isPlain reports whether s needs no quoting anywhere in a command line. The
// set is deliberately small: no '=' (a leading word NAME=V would be an
// assignment), no '~' or '#' (tilde expansion and comments at a word start).
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '-', c == '.', c == '/', c == ',', c == ':', c == '@', c == '%', c == '+':
		default:
			return false
		}
	}
	return true
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Command returns shell code that runs argv with the environment additions
// env ("NAME=value" entries): `env 'NAME=value' ... argv...`, or just the
// quoted argv when env is empty. Every value is quoted with Quote. Prefix the
// result with "exec " to replace the remote shell.
//
// It returns an error for an empty argv, an env entry without '=' or with an
// invalid name (names match [A-Za-z_][A-Za-z0-9_]*), a NUL byte anywhere, and
// a program name containing '=' when env is used (env would take it for an
// assignment).
func Command(env []string, argv []string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("empty command")
	}
	var b strings.Builder
	if len(env) > 0 {
		if strings.Contains(argv[0], "=") {
			return "", fmt.Errorf("program name %q contains '=': env would read it as a variable", argv[0])
		}
		b.WriteString("env")
		for _, kv := range env {
			name, _, ok := strings.Cut(kv, "=")
			if !ok || !envName.MatchString(name) {
				return "", fmt.Errorf("invalid environment entry %q: want NAME=value with NAME matching [A-Za-z_][A-Za-z0-9_]*", redactValue(kv))
			}
			if strings.IndexByte(kv, 0) >= 0 {
				return "", fmt.Errorf("environment variable %s contains a NUL byte", name)
			}
			b.WriteByte(' ')
			b.WriteString(Quote(kv))
		}
		b.WriteByte(' ')
	}
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return "", fmt.Errorf("argument %d contains a NUL byte", i)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(Quote(a))
	}
	return b.String(), nil
}

// redactValue keeps the part of an environment entry before '=' for error
// messages: values may be secrets.
func redactValue(kv string) string {
	if name, _, ok := strings.Cut(kv, "="); ok {
		return name + "=..."
	}
	return kv
}
