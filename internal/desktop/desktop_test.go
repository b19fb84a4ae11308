package desktop

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/profiles"
)

// unescapeString undoes the string escapes of the Desktop Entry
// Specification, as a reader of the file does before anything else.
func unescapeString(t testing.TB, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			t.Fatalf("value %q ends in a lone backslash", s)
		}
		switch s[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			t.Fatalf("value %q has the unknown escape \\%c", s, s[i])
		}
	}
	return b.String()
}

// splitExec parses an Exec value as the specification says a launcher does:
// string escapes first, then arguments separated by spaces, quoted ones
// undone, then "%%" expanded to "%". Any other field code is an error: the
// entries xvmview writes have none.
func splitExec(t testing.TB, value string) []string {
	s := unescapeString(t, value)
	var args []string
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		var b strings.Builder
		if s[i] == '"' {
			i++
			for {
				if i == len(s) {
					t.Fatalf("Exec %q: unterminated quote", value)
				}
				c := s[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					if i+1 == len(s) || !strings.ContainsRune("\"`$\\", rune(s[i+1])) {
						t.Fatalf("Exec %q: backslash before %q inside quotes", value, s[i+1:])
					}
					c = s[i+1]
					i++
				}
				b.WriteByte(c)
				i++
			}
			if i < len(s) && s[i] != ' ' {
				t.Fatalf("Exec %q: quoted argument followed by %q", value, s[i:])
			}
		} else {
			for i < len(s) && s[i] != ' ' {
				if strings.IndexByte(reserved, s[i]) >= 0 {
					t.Fatalf("Exec %q: reserved character %q outside quotes", value, s[i])
				}
				b.WriteByte(s[i])
				i++
			}
		}
		a := b.String()
		var out strings.Builder
		for j := 0; j < len(a); j++ {
			if a[j] == '%' {
				if j+1 == len(a) || a[j+1] != '%' {
					t.Fatalf("Exec %q: field code in %q", value, a)
				}
				j++
			}
			out.WriteByte(a[j])
		}
		args = append(args, out.String())
	}
	return args
}

func TestEscapeString(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "Firefox in the web domU", "Firefox in the web domU"},
		{"empty", "", ""},
		{"backslash", `a\b`, `a\\b`},
		{"newline tab cr", "a\nb\tc\rd", `a\nb\tc\rd`},
		{"leading and trailing space", " a b ", `\sa b\s`},
		{"semicolon stays in a single value", "a;b", "a;b"},
		{"other control character", "a\x01b\x7f", "a\uFFFDb\uFFFD"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"unicode", "Café ☕", "Café ☕"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := EscapeString(tc.in); got != tc.want {
				t.Errorf("EscapeString(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestEscapeList(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"one", []string{"Network"}, "Network;"},
		{"two", []string{"Network", "WebBrowser"}, "Network;WebBrowser;"},
		{"semicolon", []string{"a;b", "c"}, `a\;b;c;`},
		{"backslash and newline", []string{"a\\b\nc"}, `a\\b\nc;`},
		{"none", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := EscapeList(tc.in); got != tc.want {
				t.Errorf("EscapeList(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestQuoteArg(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "run", "run"},
		{"path", "/usr/bin/xvmview", "/usr/bin/xvmview"},
		{"empty", "", `""`},
		{"space", "a b", `"a b"`},
		{"double quote", `a"b`, `"a\"b"`},
		{"single quote", "a'b", `"a'b"`},
		{"dollar", "a$b", `"a\$b"`},
		{"backtick", "a`b", "\"a\\`b\""},
		{"backslash", `a\b`, `"a\\b"`},
		{"percent alone needs no quotes", "50%", "50%%"},
		{"percent and space", "a %f", `"a %%f"`},
		{"equals", "a=b", `"a=b"`},
		{"shell characters", "a;b|c&d<e>f*g?h#i(j)k~l", `"a;b|c&d<e>f*g?h#i(j)k~l"`},
		{"tab and newline", "a\tb\nc", "\"a\tb\nc\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := QuoteArg(tc.in); got != tc.want {
				t.Errorf("QuoteArg(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// nastyBinaries are xvmview paths a menu entry must launch exactly.
var nastyBinaries = []struct{ name, path, exec string }{
	{"plain", "/usr/bin/xvmview", "/usr/bin/xvmview run demo"},
	{"space", "/opt/my apps/xvmview", `"/opt/my apps/xvmview" run demo`},
	{"double quote", `/opt/a"b/xvmview`, `"/opt/a\\"b/xvmview" run demo`},
	{"single quote", "/opt/it's/xvmview", `"/opt/it's/xvmview" run demo`},
	{"dollar", "/opt/$HOME/xvmview", `"/opt/\\$HOME/xvmview" run demo`},
	{"backtick", "/opt/`id`/xvmview", "\"/opt/\\\\`id\\\\`/xvmview\" run demo"},
	{"backslash", `/opt/a\b/xvmview`, `"/opt/a\\\\b/xvmview" run demo`},
	{"percent", "/opt/100%/xvmview", "/opt/100%%/xvmview run demo"},
	{"percent field code", "/opt/%f %u/xvmview", `"/opt/%%f %%u/xvmview" run demo`},
	{"all at once", `/opt/a "b" $c \d %e/x vm`, `"/opt/a \\"b\\" \\$c \\\\d %%e/x vm" run demo`},
	{"shell characters", "/opt/a;b&c|d/xvmview", `"/opt/a;b&c|d/xvmview" run demo`},
	{"unicode", "/opt/Café/xvmview", "/opt/Café/xvmview run demo"},
}

func TestExecValue(t *testing.T) {
	for _, tc := range nastyBinaries {
		t.Run(tc.name, func(t *testing.T) {
			argv := []string{tc.path, "run", "demo"}
			got, err := ExecValue(argv)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.exec {
				t.Errorf("ExecValue(%q) =\n  %s\nwant\n  %s", argv, got, tc.exec)
			}
			if back := splitExec(t, got); !slices.Equal(back, argv) {
				t.Errorf("Exec %s parses back as %q, want %q", got, back, argv)
			}
		})
	}
}

func TestExecValueErrors(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"empty", nil, "no program"},
		{"empty program", []string{""}, "no program"},
		{"equals in program", []string{"/opt/a=b/xvmview", "run"}, `"="`},
		{"NUL", []string{"/usr/bin/xvmview", "a\x00b"}, "control character"},
		{"control character", []string{"/usr/bin/xvmview", "a\x1bb"}, "control character"},
		{"invalid UTF-8", []string{"/usr/bin/xvmview", "a\xffb"}, "not UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExecValue(tc.argv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ExecValue(%q) = %q, %v; want an error containing %q", tc.argv, got, err, tc.want)
			}
		})
	}
}

func FuzzExecValue(f *testing.F) {
	for _, tc := range nastyBinaries {
		f.Add(tc.path, "run demo")
	}
	f.Add("/a b", "\t\n\r %% \" ` $ \\ '")
	f.Fuzz(func(t *testing.T, program, arg string) {
		argv := []string{program, arg}
		v, err := ExecValue(argv)
		if err != nil {
			return
		}
		if strings.ContainsAny(v, "\n\r") {
			t.Fatalf("Exec value %q spans lines", v)
		}
		if back := splitExec(t, v); !slices.Equal(back, argv) {
			t.Fatalf("Exec %s parses back as %q, want %q", v, back, argv)
		}
	})
}

func demoProfile(t *testing.T, name string) profile.Profile {
	t.Helper()
	p, err := profile.Load(name, profile.Dirs{Embedded: profiles.FS})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNew(t *testing.T) {
	local := profile.Profile{Name: "mine", Host: profile.LocalHost, Command: []string{"/usr/bin/xclock"}, Title: "[mine] xclock (local)"}
	tests := []struct {
		name    string
		p       profile.Profile
		binary  string
		check   func(t *testing.T, e Entry)
		wantErr string
	}{
		{name: "built-in firefox", p: demoProfile(t, "firefox-domu"), binary: "/usr/bin/xvmview", check: func(t *testing.T, e Entry) {
			want := Entry{
				Profile:        "firefox-domu",
				Name:           "Firefox in the web domU",
				Comment:        "xvmview profile firefox-domu: firefox on web-domu, in a nested X display of its own",
				Exec:           []string{"/usr/bin/xvmview", "run", "firefox-domu"},
				TryExec:        "/usr/bin/xvmview",
				Icon:           "firefox",
				Categories:     []string{"Network", "WebBrowser"},
				Keywords:       []string{"xvmview", "firefox-domu", "web-domu"},
				StartupWMClass: "xvmview-firefox-domu",
			}
			if fmt.Sprint(e) != fmt.Sprint(want) {
				t.Errorf("New =\n  %+v\nwant\n  %+v", e, want)
			}
		}},
		{name: "no description: the title", p: local, binary: "/usr/bin/xvmview", check: func(t *testing.T, e Entry) {
			if e.Name != "[mine] xclock (local)" || !strings.Contains(e.Comment, "xclock on this machine") {
				t.Errorf("Name %q, Comment %q", e.Name, e.Comment)
			}
			if !slices.Equal(e.Categories, DefaultCategories) || e.Icon != "" {
				t.Errorf("Categories %q, Icon %q; want the defaults and none", e.Categories, e.Icon)
			}
			if !slices.Equal(e.Keywords, []string{"xvmview", "mine"}) {
				t.Errorf("Keywords %q", e.Keywords)
			}
		}},
		{name: "absolute icon", p: with(local, func(p *profile.Profile) { p.Icon = "/usr/share/icons/a.png" }), binary: "/x/xvmview",
			check: func(t *testing.T, e Entry) {
				if e.Icon != "/usr/share/icons/a.png" {
					t.Errorf("Icon %q", e.Icon)
				}
			}},
		{name: "extension category", p: with(local, func(p *profile.Profile) { p.Categories = []string{"X-Qubes"} }), binary: "/x/xvmview",
			check: func(t *testing.T, e Entry) {
				if !slices.Equal(e.Categories, []string{"X-Qubes"}) {
					t.Errorf("Categories %q", e.Categories)
				}
			}},
		{name: "relative binary", p: local, binary: "xvmview", wantErr: "not absolute"},
		{name: "binary with newline", p: local, binary: "/opt/a\nb/xvmview", wantErr: "control character"},
		{name: "binary with equals", p: local, binary: "/opt/a=b/xvmview", wantErr: `"="`},
		{name: "relative icon", p: with(local, func(p *profile.Profile) { p.Icon = "icons/a.png" }), binary: "/x/xvmview", wantErr: "relative path"},
		{name: "tilde icon", p: with(local, func(p *profile.Profile) { p.Icon = "~/a.png" }), binary: "/x/xvmview", wantErr: "relative path"},
		{name: "unregistered category", p: with(local, func(p *profile.Profile) { p.Categories = []string{"Browsers"} }), binary: "/x/xvmview", wantErr: `"X-Browsers"`},
		{name: "miscased category", p: with(local, func(p *profile.Profile) { p.Categories = []string{"webbrowser"} }), binary: "/x/xvmview", wantErr: `did you mean "WebBrowser"`},
		{name: "reserved category", p: with(local, func(p *profile.Profile) { p.Categories = []string{"Screensaver"} }), binary: "/x/xvmview", wantErr: "not registered"},
		{name: "path as name", p: with(local, func(p *profile.Profile) { p.Name = "../evil" }), binary: "/x/xvmview", wantErr: "not a path"},
		{name: "space in name", p: with(local, func(p *profile.Profile) { p.Name = "a b" }), binary: "/x/xvmview", wantErr: `has " "`},
		{name: "newline in name", p: with(local, func(p *profile.Profile) { p.Name = "a\nb" }), binary: "/x/xvmview", wantErr: "profile name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.p, tc.binary)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %+v, %v; want an error containing %q", e, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, e)
		})
	}
}

func with(p profile.Profile, f func(*profile.Profile)) profile.Profile {
	f(&p)
	return p
}

// TestWMClass checks that StartupWMClass is the name the session gives the
// Xephyr window, so desktops group the window under the menu entry.
func TestWMClass(t *testing.T) {
	p := demoProfile(t, "demo")
	pl, err := session.NewPlan(p, nil, session.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(p, "/usr/bin/xvmview")
	if err != nil {
		t.Fatal(err)
	}
	if e.StartupWMClass != pl.Xephyr.Name {
		t.Errorf("StartupWMClass %q, but the session names the Xephyr window %q", e.StartupWMClass, pl.Xephyr.Name)
	}
}

func TestWriteTo(t *testing.T) {
	e := Entry{
		Profile:        "web",
		Name:           " Web; \"safe\" \\ browsing\n",
		Comment:        "tab\there",
		Exec:           []string{"/opt/my apps/xvmview", "run", "web"},
		TryExec:        `/opt/my apps\x/xvmview`,
		Icon:           "firefox",
		Categories:     []string{"Network", "WebBrowser"},
		Keywords:       []string{"xvmview", "web", "a;b"},
		StartupWMClass: "xvmview-web",
	}
	var b bytes.Buffer
	if _, err := e.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"\n[Desktop Entry]\nType=Application\n",
		"\nName=\\sWeb; \"safe\" \\\\ browsing\\n\n",
		"\nComment=tab\\there\n",
		"\nExec=\"/opt/my apps/xvmview\" run web\n",
		"\nTryExec=/opt/my apps\\\\x/xvmview\n",
		"\nIcon=firefox\n",
		"\nTerminal=false\n",
		"\nCategories=Network;WebBrowser;\n",
		"\nKeywords=xvmview;web;a\\;b;\n",
		"\nStartupWMClass=xvmview-web\n",
		"\nX-Xvmview-Profile=web\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("entry lacks %q:\n%s", want, got)
		}
	}
	if ok, err := hasMarker(strings.NewReader(got), "web"); !ok || err != nil {
		t.Errorf("hasMarker = %v, %v on the entry WriteTo wrote", ok, err)
	}

	e.Exec = nil
	if _, err := e.WriteTo(&b); err == nil {
		t.Error("WriteTo with no Exec: no error")
	}
}

func TestHasMarker(t *testing.T) {
	tests := []struct {
		name, file string
		want       bool
	}{
		{"ours", "[Desktop Entry]\nName=a\nX-Xvmview-Profile=web\n", true},
		{"spaces around =", "[Desktop Entry]\nX-Xvmview-Profile = web\n", true},
		{"other profile", "[Desktop Entry]\nX-Xvmview-Profile=webx\n", false},
		{"no marker", "[Desktop Entry]\nName=web\nExec=xvmview run web\n", false},
		{"marker in another group", "[Desktop Entry]\nName=a\n[Desktop Action x]\nX-Xvmview-Profile=web\n", false},
		{"marker in a comment", "[Desktop Entry]\n# X-Xvmview-Profile=web\n", false},
		{"marker before any group", "X-Xvmview-Profile=web\n[Desktop Entry]\n", false},
		{"empty", "", false},
		{"long line", "[Desktop Entry]\nName=" + strings.Repeat("a", 100<<10) + "\nX-Xvmview-Profile=web\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hasMarker(strings.NewReader(tc.file), "web")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("hasMarker = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckCategory(t *testing.T) {
	for _, c := range []string{"Network", "WebBrowser", "2DGraphics", "X-Foo"} {
		if err := checkCategory(c); err != nil {
			t.Errorf("checkCategory(%q) = %v", c, err)
		}
	}
	for _, c := range []string{"X-", "Foo", "network", "Applet", ""} {
		var err error
		if err = checkCategory(c); err == nil {
			t.Errorf("checkCategory(%q) = nil, want an error", c)
		}
		if errors.Unwrap(err) != nil {
			t.Errorf("checkCategory(%q) wraps %v", c, errors.Unwrap(err))
		}
	}
}
