package xauth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// goldenEntries is what testdata/mkgolden.sh asks xauth to store, in the
// order xauth 1.1 writes (MIT-MAGIC-COOKIE-1 before others, Wild last).
func goldenEntries() []Entry {
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i)
	}
	mit := CookieName
	return []Entry{
		{FamilyLocal, []byte("golden"), "5", mit, mustHex("00112233445566778899aabbccddeeff")},
		{FamilyLocal, []byte("golden"), "42", mit, mustHex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")},
		{FamilyInternet, []byte{10, 1, 2, 3}, "7", mit, mustHex("ffeeddccbbaa99887766554433221100")},
		{FamilyInternet6, mustHex("fe800000000000000000000000010002"), "8", mit, mustHex("a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5")},
		{FamilyInternet6, mustHex("20010db80000000000000000000000ff"), "65000", mit, mustHex("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a")},
		{FamilyLocalHost, []byte("localhost"), "3", mit, mustHex("11111111111111111111111111111111")},
		{FamilyWild, nil, "7", mit, mustHex("0123456789abcdef0123456789abcdef")},
		{FamilyWild, []byte{127, 0, 0, 1}, "11", mit, mustHex("fedcba9876543210fedcba9876543210")},
		{FamilyWild, nil, "", mit, mustHex("22222222222222222222222222222222")},
		{FamilyInternet, []byte{192, 0, 2, 1}, "0", "XDM-AUTHORIZATION-1", mustHex("000102030405060708090a0b0c0d0e0f1011121314")},
		{FamilyKrb5Principal, []byte("user@EXAMPLE.ORG"), "4", "MIT-KERBEROS-5", mustHex("deadbeef")},
		{FamilyNetname, []byte("unix.100@xx"), "9", "SUN-DES-1", mustHex("0102030405060708")},
		{Family(0x1234), []byte{0xab, 0xcd}, "123", "FOO", long},
		{FamilyLocal, []byte("golden"), "", "", nil},
	}
}

func TestGoldenRead(t *testing.T) {
	raw := mustReadFile(t, "testdata/golden.xauth")
	got, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := goldenEntries()
	if !entriesEqual(got, want) {
		t.Fatalf("Read(golden.xauth) =\n%v\nwant\n%v", got, want)
	}
	var buf bytes.Buffer
	if err := Write(&buf, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Error("Write(goldenEntries) differs from the file xauth wrote")
	}
}

func TestGoldenNumeric(t *testing.T) {
	raw := string(mustReadFile(t, "testdata/golden.nlist"))
	got, err := ReadNumeric(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := goldenEntries()
	if !entriesEqual(got, want) {
		t.Fatalf("ReadNumeric(golden.nlist) =\n%v\nwant\n%v", got, want)
	}
	var buf bytes.Buffer
	if err := WriteNumeric(&buf, want); err != nil {
		t.Fatal(err)
	}
	if buf.String() != raw {
		t.Errorf("WriteNumeric differs from xauth nlist:\n%s\nwant\n%s", buf.String(), raw)
	}
	for i, line := range strings.SplitAfter(raw, "\n") {
		if line == "" {
			continue
		}
		if got := want[i].Numeric(); got != line {
			t.Errorf("entry %d: Numeric = %q, want %q", i, got, line)
		}
	}
}

func TestReadTruncated(t *testing.T) {
	// One entry: family 0100, address "vm", number "5", name "N", data 2 bytes.
	full := mustHex("0100" + "0002" + "766d" + "0001" + "35" + "0001" + "4e" + "0002" + "abcd")
	tests := []struct {
		name   string
		n      int // bytes kept
		offset int64
		field  string
	}{
		{"one byte of family", 1, 0, "family"},
		{"no address length", 2, 2, "address length"},
		{"half address length", 3, 2, "address length"},
		{"no address", 4, 4, "address"},
		{"half address", 5, 4, "address"},
		{"no number length", 6, 6, "number length"},
		{"no number", 8, 8, "number"},
		{"no name length", 9, 9, "name length"},
		{"no name", 11, 11, "name"},
		{"no data length", 12, 12, "data length"},
		{"no data", 14, 14, "data"},
		{"half data", 15, 14, "data"},
		{"second entry cut", len(full) + 1, int64(len(full)), "family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append(append([]byte{}, full...), full...)[:tt.n]
			_, err := Read(bytes.NewReader(in))
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			if fe.Offset != tt.offset || fe.Field != tt.field {
				t.Errorf("got offset %d field %q, want %d %q (%v)", fe.Offset, fe.Field, tt.offset, tt.field, err)
			}
			if !strings.Contains(err.Error(), "truncated") {
				t.Errorf("error %q does not say truncated", err)
			}
		})
	}
	if got, err := Read(bytes.NewReader(nil)); err != nil || len(got) != 0 {
		t.Errorf("Read(empty) = %v, %v; want no entries, no error", got, err)
	}
}

// repeatReader yields b forever.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

func TestReadLimits(t *testing.T) {
	t.Run("absurd length", func(t *testing.T) {
		_, err := Read(bytes.NewReader(mustHex("0100ffff616263")))
		fe, ok := errors.AsType[*FormatError](err)
		if !ok || fe.Field != "address" || fe.Offset != 4 || !strings.Contains(fe.Reason, "need 65535 bytes, have 3") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("too many entries", func(t *testing.T) {
		// Ten zero bytes are one valid entry with empty fields.
		_, err := Read(io.LimitReader(&repeatReader{b: make([]byte, 10)}, 10*(MaxEntries+1)))
		fe, ok := errors.AsType[*FormatError](err)
		if !ok || fe.Offset != 10*MaxEntries || !strings.Contains(fe.Reason, "entries") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		big, _ := Entry{Family: FamilyLocal, Data: make([]byte, maxField)}.AppendBinary(nil)
		_, err := Read(&repeatReader{b: big})
		fe, ok := errors.AsType[*FormatError](err)
		if !ok || fe.Field != "file" || fe.Offset != MaxFileSize {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("reader error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := Read(io.MultiReader(bytes.NewReader([]byte{1}), &errReader{boom}))
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want wrapped boom", err)
		}
	})
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestWriteTooLong(t *testing.T) {
	tests := []struct {
		name  string
		e     Entry
		field string
	}{
		{"address", Entry{Address: make([]byte, maxField+1)}, "address"},
		{"number", Entry{Number: strings.Repeat("1", maxField+1)}, "number"},
		{"name", Entry{Name: strings.Repeat("N", maxField+1)}, "name"},
		{"data", Entry{Data: make([]byte, maxField+1)}, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, []Entry{WildEntry(1, Cookie{}), tt.e})
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("err = %v, want one naming %s", err, tt.field)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", buf.Len())
			}
			if _, err := tt.e.WriteTo(&buf); err == nil || buf.Len() != 0 {
				t.Errorf("WriteTo: err = %v, wrote %d bytes", err, buf.Len())
			}
			if err := WriteNumeric(&buf, []Entry{tt.e}); err == nil || buf.Len() != 0 {
				t.Errorf("WriteNumeric: err = %v, wrote %d bytes", err, buf.Len())
			}
		})
	}
	// The largest legal field works.
	e := Entry{Family: FamilyWild, Data: make([]byte, maxField)}
	var buf bytes.Buffer
	if n, err := e.WriteTo(&buf); err != nil || n != int64(10+maxField) {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	got, err := Read(&buf)
	if err != nil || len(got) != 1 || !got[0].Equal(e) {
		t.Errorf("round trip of a maximal field failed: %v", err)
	}
}

func TestGoldenIsCurrent(t *testing.T) {
	// The golden files must be regenerated together.
	raw, err := os.ReadFile("testdata/golden.xauth")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteNumeric(&buf, entries); err != nil {
		t.Fatal(err)
	}
	if buf.String() != string(mustReadFile(t, "testdata/golden.nlist")) {
		t.Error("golden.nlist does not list golden.xauth: rerun testdata/mkgolden.sh")
	}
}
