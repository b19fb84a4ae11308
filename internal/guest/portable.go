package guest

import "strings"

// portableFirst is the part of every command sent to the guest that its
// login shell parses: words every shell reads alike (sh, dash, bash, ksh,
// mksh, zsh, fish, csh, tcsh; exec, so that sh replaces the login shell and
// stays the session's process group leader whatever the shell), then single-quoted arguments holding the
// real script encoded by Portable (several words for a long script). POSIX sh decodes it with printf
// (octal escapes in the format) and evals it. Inside single quotes fish
// reads only \\ and \' as escapes and csh only ! and a line end; the code
// and the encoded script contain none of them.
const portableFirst = `exec sh -c 'eval "$(IFS=; printf "$*")"' sh '`

// portableWord is the most Portable puts in one single-quoted word: csh
// refuses a word of about 10 KB ("Word too long."), so a longer script
// travels as several words, which sh joins again ("$*" with IFS empty)
// before printf decodes them. A word never ends inside an escape.
const portableWord = 4096

// Portable returns what to send to sshd so that script, POSIX shell code
// (from Command and StartCommand), runs in /bin/sh whatever the guest
// user's login shell is. The script travels as an argument made of letters,
// digits, spaces and a few punctuation marks that no shell treats specially
// inside single quotes; every other byte is a three-digit octal escape
// (\NNN), which printf decodes. Command rejects NUL bytes, which no shell
// argument can carry.
func Portable(script string) string {
	var b strings.Builder
	b.Grow(len(portableFirst) + 2*len(script) + 1)
	b.WriteString(portableFirst)
	word := 0
	for i := 0; i < len(script); i++ {
		if word >= portableWord-4 {
			b.WriteString("' '")
			word = 0
		}
		c := script[i]
		if portableByte(c) {
			b.WriteByte(c)
			word++
			continue
		}
		word += 4
		b.WriteByte('\\')
		b.WriteByte('0' + c>>6)
		b.WriteByte('0' + c>>3&7)
		b.WriteByte('0' + c&7)
	}
	b.WriteByte('\'')
	return b.String()
}

// portableByte reports whether c can stand for itself in Portable's
// argument: nothing that printf's format, a shell's single quotes (fish:
// \ and '; csh: ! and line ends) or option parsing ('-' first) would read
// differently.
func portableByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == ' ', c == '_', c == '.', c == '/', c == ',', c == ':', c == '=', c == '+', c == '@':
		return true
	}
	return false
}
