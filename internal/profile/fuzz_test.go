package profile

import (
	"errors"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/profiles"
)

func FuzzParse(f *testing.F) {
	names, err := profilesNames()
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range names {
		data, err := profiles.FS.ReadFile(n + ".toml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(n, data)
	}
	for _, doc := range []string{
		minimal,
		minimal + "comand = 1\n",
		"host = \"local\"\ncommand = [\"x\"]\nport = 22\n",
		"host = \"web\"\ncommand = [\n\"a\",\n\"\"]\n",
		"[a]\nb = 1\n[[c]]\n",
		"host = {a = [1, {b = 2}]}\n",
		"port = 0x10\nscreen = \"64x64x8\"\n",
	} {
		f.Add("web", []byte(doc))
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		const src = "/profiles/src.toml"
		p, err := Parse(name, src, data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Source != src || !strings.HasPrefix(err.Error(), src+":") {
				t.Fatalf("error %q (%T) does not carry the source", err, err)
			}
			return
		}
		if ValidName(name) != nil || p.Name != name || p.Source != src {
			t.Fatalf("accepted name %q as %q from %q", name, p.Name, p.Source)
		}
		if len(p.Command) == 0 || p.Host == "" || p.Title == "" {
			t.Fatalf("accepted profile without command, host or title: %+v", p)
		}
		if _, err := ParseScreen(p.Screen); err != nil {
			t.Fatalf("accepted bad screen: %v", err)
		}
		if p.Local() != (p.Transport == "") {
			t.Fatalf("transport %q for host %q", p.Transport, p.Host)
		}
		if p.Port < 0 || p.Port > 65535 {
			t.Fatalf("accepted port %d", p.Port)
		}
	})
}

func profilesNames() ([]string, error) {
	entries, err := List(Dirs{Embedded: profiles.FS})
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	return names, err
}
