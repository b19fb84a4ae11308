// Package desktop renders and installs freedesktop.org menu entries (.desktop
// files) that launch xvmview profiles, following the Desktop Entry
// Specification: one file xvmview-PROFILE.desktop per profile, whose Exec line
// runs `xvmview run PROFILE` with xvmview given by absolute path.
//
// New and (Entry).WriteTo are pure, so the escaping can be tested and fuzzed;
// Install, Remove and Installed add the file system. Every file xvmview writes
// carries the key X-Xvmview-Profile=PROFILE, and Remove deletes only files
// that have it, so entries written by anyone else are never touched.
package desktop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xvmview/xvmview/internal/profile"
)

// MarkerKey is the key whose value names the profile of an entry xvmview
// wrote. Remove and Installed only consider files that carry it.
const MarkerKey = "X-Xvmview-Profile"

// DefaultCategories are the categories of an entry whose profile sets none.
var DefaultCategories = []string{"Utility"}

// Entry is the menu entry of one profile. New fills it from a profile; the
// fields hold plain values, which WriteTo escapes.
type Entry struct {
	Profile        string   // the profile's name; the file is FileName(Profile)
	Name           string   // what the menu shows
	Comment        string   // the tooltip
	Exec           []string // the command line: xvmview's absolute path, "run", the profile
	TryExec        string   // xvmview's absolute path: the menu hides the entry when it is gone
	Icon           string   // an icon name or an absolute path; "" for none
	Categories     []string // registered categories or "X-" extensions
	Keywords       []string // extra search terms
	StartupWMClass string   // the WM_CLASS of the Xephyr window: "xvmview-" + Profile
}

// FileName is the name of the desktop file of the profile called name,
// "xvmview-NAME.desktop", which is also its desktop file ID.
func FileName(name string) string { return "xvmview-" + name + ".desktop" }

// WMClass is the WM_CLASS instance name of the Xephyr window of the profile
// called name, as the session sets it with Xephyr's -name option.
func WMClass(name string) string { return "xvmview-" + name }

// New returns the entry that runs profile p with the xvmview binary at the
// absolute path binary. The menu shows the profile's description, or its
// window title when it has none; the comment names the profile and where its
// app runs. It returns an error naming the problem for an invalid profile
// name, a binary path that is not absolute or that a desktop entry cannot
// launch (a control character or "="), an icon that is a relative path, and a
// category that is neither registered nor an "X-" extension.
func New(p profile.Profile, binary string) (Entry, error) {
	if err := profile.ValidName(p.Name); err != nil {
		return Entry{}, err
	}
	switch {
	case !filepath.IsAbs(binary):
		return Entry{}, fmt.Errorf("xvmview's path %q is not absolute", binary)
	case hasControl(binary) || !utf8.ValidString(binary):
		return Entry{}, fmt.Errorf("xvmview's path %q has a control character or is not UTF-8; a menu entry cannot launch it: install xvmview elsewhere", binary)
	case strings.Contains(binary, "="):
		return Entry{}, fmt.Errorf("xvmview's path %q has an \"=\", which the Exec key of a menu entry may not have: install xvmview elsewhere", binary)
	}
	if p.Icon != "" && !path.IsAbs(p.Icon) && strings.Contains(p.Icon, "/") {
		return Entry{}, fmt.Errorf("profile %s: icon %q is a relative path; give an icon name (like \"firefox\") or an absolute path", p.Name, p.Icon)
	}
	cats := p.Categories
	if len(cats) == 0 {
		cats = DefaultCategories
	}
	for _, c := range cats {
		if err := checkCategory(c); err != nil {
			return Entry{}, fmt.Errorf("profile %s: %w", p.Name, err)
		}
	}

	program := "?"
	if len(p.Command) > 0 {
		program = path.Base(p.Command[0])
	}
	where := "on " + p.Host
	if p.Local() {
		where = "on this machine"
	}
	name := strings.TrimSpace(p.Description)
	if name == "" {
		name = p.Title
	}
	if name == "" {
		name = profile.DefaultTitle(p.Name, program, p.Host)
	}
	keywords := []string{"xvmview", p.Name}
	if !p.Local() {
		keywords = append(keywords, p.Host)
	}
	return Entry{
		Profile:        p.Name,
		Name:           name,
		Comment:        fmt.Sprintf("xvmview profile %s: %s %s, in a nested X display of its own", p.Name, program, where),
		Exec:           []string{binary, "run", p.Name},
		TryExec:        binary,
		Icon:           p.Icon,
		Categories:     append([]string(nil), cats...),
		Keywords:       keywords,
		StartupWMClass: WMClass(p.Name),
	}, nil
}

// WriteTo writes e as a desktop file. It returns an error when w fails, or
// the error of ExecValue for e.Exec.
func (e Entry) WriteTo(w io.Writer) (int64, error) {
	exec, err := ExecValue(e.Exec)
	if err != nil {
		return 0, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Menu entry for the xvmview profile %s, written by 'xvmview desktop install'.\n", oneLine(e.Profile))
	fmt.Fprintf(&b, "# 'xvmview desktop remove %s' deletes it; edits are lost when it is installed again.\n", oneLine(e.Profile))
	b.WriteString("[Desktop Entry]\n")
	kv := func(k, v string) { b.WriteString(k + "=" + v + "\n") }
	kv("Type", "Application")
	kv("Version", "1.4") // 1.5 adds nothing used here, and older tools reject it
	kv("Name", EscapeString(e.Name))
	if e.Comment != "" {
		kv("Comment", EscapeString(e.Comment))
	}
	kv("Exec", exec)
	if e.TryExec != "" {
		kv("TryExec", EscapeString(e.TryExec))
	}
	if e.Icon != "" {
		kv("Icon", EscapeString(e.Icon))
	}
	kv("Terminal", "false")
	if len(e.Categories) > 0 {
		kv("Categories", EscapeList(e.Categories))
	}
	if len(e.Keywords) > 0 {
		kv("Keywords", EscapeList(e.Keywords))
	}
	if e.StartupWMClass != "" {
		kv("StartupWMClass", EscapeString(e.StartupWMClass))
	}
	kv(MarkerKey, EscapeString(e.Profile))
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

// oneLine keeps a value that goes into a comment on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// EscapeString escapes s as the value of a key of type string or
// localestring: a backslash becomes `\\`, a newline `\n`, a tab `\t`, a
// carriage return `\r` and a leading or trailing space `\s`. Other control characters and
// invalid UTF-8, which a desktop file cannot hold, become U+FFFD.
func EscapeString(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == ' ' && (i == 0 || i == len(s)-1):
			b.WriteString(`\s`)
		case r == utf8.RuneError, unicode.IsControl(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// EscapeList escapes items as the value of a key with multiple values: each
// item as by EscapeString with ";" escaped as `\;`, each followed by ";".
func EscapeList(items []string) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(strings.ReplaceAll(EscapeString(it), ";", `\;`))
		b.WriteByte(';')
	}
	return b.String()
}

// reserved are the characters that make the Desktop Entry Specification
// require quoting an argument of Exec. "=" is reserved in older versions of
// the specification; quoting it is harmless.
const reserved = " \t\n\"'\\><~|&;$*?#()`="

// QuoteArg quotes one argument of an Exec command line as the Desktop Entry
// Specification says: an argument with a reserved character is put in double
// quotes, inside which `"`, "`", "$" and `\` get a backslash; and "%" is
// doubled, since a single one starts a field code. The result still needs
// EscapeString; ExecValue does both.
func QuoteArg(arg string) string {
	arg = strings.ReplaceAll(arg, "%", "%%")
	if arg != "" && !strings.ContainsAny(arg, reserved) {
		return arg
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range arg {
		if strings.ContainsRune("\"`$\\", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// ExecValue returns the value of an Exec key that runs argv: each argument
// quoted by QuoteArg, joined by spaces, and the whole escaped by
// EscapeString, so a literal backslash in a quoted argument ends up as four.
// It returns an error for an empty argv, invalid UTF-8, a control character
// other than tab, newline and carriage return, or an "=" in argv[0]
// (the specification forbids it in the program's name or path).
func ExecValue(argv []string) (string, error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", errors.New("menu entry has no program to run")
	}
	if strings.Contains(argv[0], "=") {
		return "", fmt.Errorf("program %q has an \"=\", which the Exec key of a menu entry may not have", argv[0])
	}
	q := make([]string, len(argv))
	for i, a := range argv {
		bad := strings.IndexFunc(a, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' })
		if bad >= 0 || !utf8.ValidString(a) {
			return "", fmt.Errorf("argument %q of the menu entry's command has a control character or is not UTF-8", a)
		}
		q[i] = QuoteArg(a)
	}
	return EscapeString(strings.Join(q, " ")), nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}
