package profile

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest profile name ValidName accepts.
const MaxNameLen = 64

// ValidName reports whether name can name a profile: 1 to MaxNameLen
// characters from A-Z a-z 0-9 . _ -, starting with a letter or digit, with no
// "..". The error says what is wrong, for a user who typed the name.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("profile name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("profile name %.20q... is %d characters long, more than %d", name, len(name), MaxNameLen)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("profile name %q has a %q; give the name of a profile (see `xvmview list`), not a path", name, string(name[strings.IndexAny(name, `/\`)]))
	case strings.Contains(name, ".."):
		return fmt.Errorf("profile name %q has %q", name, "..")
	case strings.HasSuffix(name, ".toml"):
		return fmt.Errorf("profile name %q ends in .toml; leave it out: %q", name, strings.TrimSuffix(name, ".toml"))
	case name[0] == '-':
		return fmt.Errorf("profile name %q starts with %q", name, "-")
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("profile name %q has %q; use letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit", name, string(c))
		}
	}
	return nil
}
