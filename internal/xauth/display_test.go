package xauth

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseDisplay(t *testing.T) {
	const me = "myhost"
	local := func(n string, screen int) Display {
		return Display{Family: FamilyLocal, Address: []byte(me), Number: n, Screen: screen}
	}
	tests := []struct {
		name string
		in   string
		want Display
	}{
		{"colon", ":0", local("0", 0)},
		{"screen", ":5.2", local("5", 2)},
		{"leading zeros", ":007", local("7", 0)},
		{"unix", "unix:10", local("10", 0)},
		{"localhost", "localhost:8", local("8", 0)},
		{"LOCALHOST", "LOCALHOST:8", local("8", 0)},
		{"127.0.0.1", "127.0.0.1:5", local("5", 0)},
		{"[::1]", "[::1]:6", local("6", 0)},
		{"bare ::1", "::1:16", local("16", 0)},
		{"v4-mapped loopback", "[::ffff:127.0.0.1]:3", local("3", 0)},
		{"host/unix", "other/unix:9", Display{Family: FamilyLocal, Address: []byte("other"), Number: "9"}},
		{"ipv4", "10.0.0.1:17.3", Display{Family: FamilyInternet, Address: []byte{10, 0, 0, 1}, Number: "17", Screen: 3}},
		{"other loopback is Internet", "127.0.0.2:13", Display{Family: FamilyInternet, Address: []byte{127, 0, 0, 2}, Number: "13"}},
		{"v4-mapped", "[::ffff:10.0.0.1]:14", Display{Family: FamilyInternet, Address: []byte{10, 0, 0, 1}, Number: "14"}},
		{"ipv6", "[fe80::1]:15", Display{Family: FamilyInternet6, Address: mustHex("fe800000000000000000000000000001"), Number: "15"}},
		{"ipv6 zone", "[fe80::1%eth0]:15", Display{Family: FamilyInternet6, Address: mustHex("fe800000000000000000000000000001"), Number: "15"}},
		{"bare ipv6", "2001:db8::2:1", Display{Family: FamilyInternet6, Address: mustHex("20010db8000000000000000000000002"), Number: "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDisplay(tt.in, me)
			if err != nil {
				t.Fatal(err)
			}
			if got.Family != tt.want.Family || string(got.Address) != string(tt.want.Address) ||
				got.Number != tt.want.Number || got.Screen != tt.want.Screen {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			again, err := ParseDisplay(got.String(), me)
			if err != nil || again.Family != got.Family || string(again.Address) != string(got.Address) ||
				again.Number != got.Number || again.Screen != got.Screen {
				t.Errorf("String %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseDisplayErrors(t *testing.T) {
	tests := []struct {
		name, in, hostname, reason string
	}{
		{"empty", "", "h", "no \":\""},
		{"no colon", "foo", "h", "no \":\""},
		{"no number", "host:", "h", "decimal"},
		{"letters", ":x", "h", "decimal"},
		{"sign", ":+1", "h", "decimal"},
		{"huge", ":99999999999", "h", "decimal"},
		{"empty screen", ":1.", "h", "screen"},
		{"bad screen", ":1.a", "h", "screen"},
		{"two dots", ":1.2.3", "h", "screen"},
		{"decnet", "host::0", "h", "DECnet"},
		{"decnet empty", "::0", "h", "DECnet"},
		{"name needs dns", "example.org:0", "h", "name resolution"},
		{"own name needs dns", "h:0", "h", "name resolution"},
		{"tcp prefix", "tcp/10.0.0.1:18", "h", "not supported"},
		{"path", "/tmp/.X11-unix/X0:1", "h", "not supported"},
		{"empty /unix host", "/unix:1", "h", "/unix"},
		{"unbalanced", "[::1:5", "h", "unbalanced"},
		{"v4 in brackets", "[10.0.0.1]:5", "h", "IPv6"},
		{"bad v6", "[fe80::zz]:5", "h", "IPv6"},
		{"no hostname", ":0", "", "host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDisplay(tt.in, tt.hostname)
			de, ok := errors.AsType[*DisplayError](err)
			if !ok {
				t.Fatalf("err = %v, want *DisplayError", err)
			}
			if de.Name != tt.in || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %v, want name %q and reason containing %q", err, tt.in, tt.reason)
			}
		})
	}
}

// TestParseDisplayMatchesXauth adds each display with the real xauth and
// checks that it stored the key ParseDisplay computes.
func TestParseDisplayMatchesXauth(t *testing.T) {
	requireXauth(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{":0", ":5.2", ":007", "unix:10", "localhost:8", "127.0.0.1:5", "[::1]:6", "::1:16",
		"other/unix:9", "10.0.0.1:17.3", "127.0.0.2:13", "[::ffff:10.0.0.1]:14", "[fe80::1]:15", "2001:db8::2:1"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			d, err := ParseDisplay(name, hostname)
			if err != nil {
				t.Fatal(err)
			}
			path := tempAuth(t)
			runXauth(t, "add "+name+" . "+cookieN(1).Hex()+"\n", "-q", "-f", path)
			got, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Family != d.Family || string(got[0].Address) != string(d.Address) || got[0].Number != d.Number {
				t.Errorf("xauth stored %v, ParseDisplay gave %+v", got, d)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	c1, c2, c3 := cookieN(1), cookieN(2), cookieN(3)
	local5 := LocalEntry("vm", 5, c1)
	wild5 := WildEntry(5, c2)
	anyNum := Entry{Family: FamilyLocal, Address: []byte("vm"), Name: "XDM-AUTHORIZATION-1", Data: c3.Bytes()}
	inet := Entry{Family: FamilyInternet, Address: []byte{10, 0, 0, 1}, Number: "6", Name: CookieName, Data: c3.Bytes()}
	entries := []Entry{inet, anyNum, local5, wild5}
	tests := []struct {
		name    string
		entries []Entry
		family  Family
		address string
		number  string
		names   []string
		want    *Entry
	}{
		{"first match, any name", entries, FamilyLocal, "vm", "5", nil, &anyNum},
		{"name filter", entries, FamilyLocal, "vm", "5", []string{CookieName}, &local5},
		{"name order wins over position", entries, FamilyLocal, "vm", "5", []string{"XDM-AUTHORIZATION-1", CookieName}, &anyNum},
		{"later name still matches", entries, FamilyLocal, "vm", "5", []string{"NOPE", CookieName}, &local5},
		{"wild entry for other host", entries, FamilyLocal, "guest", "5", []string{CookieName}, &wild5},
		{"wild entry, other number", entries, FamilyLocal, "guest", "7", []string{CookieName}, nil},
		{"wild query", entries, FamilyWild, "", "6", []string{CookieName}, &inet},
		{"empty query number", entries, FamilyInternet, "\x0a\x00\x00\x01", "", nil, &inet},
		{"internet", entries, FamilyInternet, "\x0a\x00\x00\x01", "6", nil, &inet},
		{"family mismatch", []Entry{local5}, FamilyInternet, "vm", "5", nil, nil},
		{"address mismatch", []Entry{local5}, FamilyLocal, "vmx", "5", nil, nil},
		{"no name matches", entries, FamilyLocal, "vm", "5", []string{"NOPE"}, nil},
		{"empty", nil, FamilyLocal, "vm", "5", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Lookup(tt.entries, tt.family, []byte(tt.address), tt.number, tt.names...)
			if ok != (tt.want != nil) {
				t.Fatalf("ok = %v, got %v", ok, got)
			}
			if ok && !got.Equal(*tt.want) {
				t.Errorf("got %v, want %v", got, *tt.want)
			}
		})
	}
}

func TestEntryConstructors(t *testing.T) {
	c := cookieN(9)
	w := WildEntry(12, c)
	if w.Family != FamilyWild || len(w.Address) != 0 || w.Number != "12" || w.Name != CookieName || string(w.Data) != string(c[:]) {
		t.Errorf("WildEntry = %#v", w)
	}
	if got, want := w.Numeric(), "ffff 0000  0002 3132 0012 4d49542d4d414749432d434f4f4b49452d31 0010 "+c.Hex()+"\n"; got != want {
		t.Errorf("WildEntry Numeric = %q, want %q", got, want)
	}
	l := LocalEntry("vm", 3, c)
	if l.Family != FamilyLocal || string(l.Address) != "vm" || l.Number != "3" || l.Name != CookieName || string(l.Data) != string(c[:]) {
		t.Errorf("LocalEntry = %#v", l)
	}
}

func TestFamilyString(t *testing.T) {
	for f, want := range map[Family]string{FamilyInternet: "Internet", FamilyInternet6: "Internet6", FamilyLocalHost: "LocalHost",
		FamilyKrb5Principal: "Krb5Principal", FamilyNetname: "Netname", FamilyLocal: "Local", FamilyWild: "Wild", 7: "Family(7)"} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %s, want %s", uint16(f), got, want)
		}
	}
}

func TestSplitDisplay(t *testing.T) {
	tests := []struct {
		in   string
		want DisplayName
		err  string
	}{
		{in: ":0", want: DisplayName{}},
		{in: ":007.2", want: DisplayName{Number: 7, Screen: 2}},
		{in: "unix:3", want: DisplayName{Host: "unix", Number: 3}},
		{in: "localhost:10.0", want: DisplayName{Host: "localhost", Number: 10}},
		{in: "tcp/10.0.0.5:1", want: DisplayName{Protocol: "tcp", Host: "10.0.0.5", Number: 1}},
		{in: "tcp/[::1]:1", want: DisplayName{Protocol: "tcp", Host: "::1", Number: 1}},
		{in: "::1:16", want: DisplayName{Host: "::1", Number: 16}},
		{in: "other/unix:9", want: DisplayName{Host: "other", Unix: true, Number: 9}},
		{in: "/tmp/launch-x/org.xquartz:0", want: DisplayName{Host: "/tmp/launch-x/org.xquartz", Unix: true}},
		{in: "example.org:4", want: DisplayName{Host: "example.org", Number: 4}},
		{in: "", err: `no ":"`},
		{in: ":x", err: "display number"},
		{in: ":1.x", err: "screen"},
		{in: "/foo:1", want: DisplayName{Host: "/foo", Unix: true, Number: 1}},
		{in: "/bar:1.", err: "screen"},
		{in: "a/b/c:1", err: "protocol"},
		{in: "/x:a", err: "display number"},
		{in: "host::0", err: "DECnet"},
		{in: "[::1:5", err: "unbalanced"},
		{in: "a]b:5", err: "stray"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SplitDisplay(tt.in)
			var de *DisplayError
			switch {
			case tt.err != "" && (!errors.As(err, &de) || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("SplitDisplay(%q) error = %v, want a *DisplayError containing %q", tt.in, err, tt.err)
			case tt.err == "" && (err != nil || got != tt.want):
				t.Errorf("SplitDisplay(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}
