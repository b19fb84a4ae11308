package xauth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FuzzRead: Read never panics; what it accepts re-encodes to the same bytes
// (the format has exactly one encoding) and survives the numeric format;
// what it rejects is a *FormatError pointing inside the input.
func FuzzRead(f *testing.F) {
	if golden, err := os.ReadFile("testdata/golden.xauth"); err == nil {
		f.Add(golden)
		f.Add(golden[:len(golden)-1])
	}
	var b bytes.Buffer
	_ = Write(&b, []Entry{WildEntry(1, cookieN(1)), LocalEntry("vm", 2, cookieN(2))})
	f.Add(b.Bytes())
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Read(bytes.NewReader(data))
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("error is not a *FormatError: %v", err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(data)) || fe.Field == "" {
				t.Fatalf("bad error position: %+v", fe)
			}
			return
		}
		var out bytes.Buffer
		if err := Write(&out, entries); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("Read→Write changed the bytes")
		}
		var num bytes.Buffer
		if err := WriteNumeric(&num, entries); err != nil {
			t.Fatal(err)
		}
		back, err := ReadNumeric(&num)
		if err != nil {
			t.Fatalf("ReadNumeric of WriteNumeric: %v", err)
		}
		if !entriesEqual(back, entries) {
			t.Fatal("numeric round trip changed entries")
		}
		// The printed forms do not depend on Data's content.
		for _, e := range entries {
			blank := e
			blank.Data = make([]byte, len(e.Data))
			if e.String() != blank.String() || e.GoString() != blank.GoString() || fmt.Sprintf("%x", e) != fmt.Sprintf("%x", blank) {
				t.Fatalf("String, GoString or %%x depends on Data: %s", e)
			}
		}
	})
}

// FuzzParseNumeric: what ParseNumeric accepts, Numeric prints canonically and
// ParseNumeric reads back as the same entry, which also survives the binary
// format; errors are *FormatError inside the line.
func FuzzParseNumeric(f *testing.F) {
	if lines, err := os.ReadFile("testdata/golden.nlist"); err == nil {
		for l := range strings.Lines(string(lines)) {
			f.Add(l)
		}
	}
	f.Add(WildEntry(7, cookieN(7)).Numeric())
	f.Add("ffff 0000  0000  0000  0000 ")
	f.Add("FFFF 0000 0001 3 7 0000 0000\r\n")
	f.Add("0000 0004 0a00")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseNumeric(line)
		if err != nil {
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("error is not a *FormatError: %v", err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(line)) || fe.Line != 1 {
				t.Fatalf("bad error position: %+v", fe)
			}
			return
		}
		canon := e.Numeric()
		again, err := ParseNumeric(canon)
		if err != nil {
			t.Fatalf("ParseNumeric(Numeric()) = %v", err)
		}
		if !again.Equal(e) || again.Numeric() != canon {
			t.Fatal("numeric round trip changed the entry")
		}
		bin, err := e.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Read(bytes.NewReader(bin))
		if err != nil || len(back) != 1 || !back[0].Equal(e) {
			t.Fatalf("binary round trip: %v", err)
		}
	})
}

// FuzzParseDisplay: what ParseDisplay accepts has a key of the right shape,
// and its canonical String parses back to the same key.
func FuzzParseDisplay(f *testing.F) {
	for _, s := range []string{":0", ":5.2", "unix:10", "localhost:8", "127.0.0.1:5", "[::1]:6", "::1:16",
		"other/unix:9", "10.0.0.1:17.3", "[::ffff:10.0.0.1]:14", "[fe80::1%eth0]:15", "host::0", "tcp/x:1", ":99999999999"} {
		f.Add(s, "myhost")
	}
	f.Add(":0", "")
	f.Fuzz(func(t *testing.T, name, hostname string) {
		d, err := ParseDisplay(name, hostname)
		if err != nil {
			if _, ok := errors.AsType[*DisplayError](err); !ok {
				t.Fatalf("error is not a *DisplayError: %v", err)
			}
			return
		}
		if n, err := strconv.Atoi(d.Number); err != nil || strconv.Itoa(n) != d.Number || n < 0 {
			t.Fatalf("Number %q is not canonical decimal", d.Number)
		}
		switch d.Family {
		case FamilyInternet:
			if len(d.Address) != 4 {
				t.Fatalf("Internet address of %d bytes", len(d.Address))
			}
		case FamilyInternet6:
			if len(d.Address) != 16 {
				t.Fatalf("Internet6 address of %d bytes", len(d.Address))
			}
		case FamilyLocal:
			if len(d.Address) == 0 {
				t.Fatal("Local with empty address")
			}
		default:
			t.Fatalf("unexpected family %v", d.Family)
		}
		again, err := ParseDisplay(d.String(), hostname)
		if err != nil {
			// A Local address that came from the name itself ("x/unix:N")
			// always parses; one that is the hostname may hold characters
			// the display grammar cannot carry.
			if d.Family == FamilyLocal && d.Host != "" && string(d.Address) == d.Host {
				t.Fatalf("String %q does not parse: %v", d.String(), err)
			}
			return
		}
		if again.Family != d.Family || string(again.Address) != string(d.Address) || again.Number != d.Number || again.Screen != d.Screen {
			t.Fatalf("String %q parses to %+v, want %+v", d.String(), again, d)
		}
	})
}
