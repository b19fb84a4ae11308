package xauth

import (
	"errors"
	"strings"
	"testing"
)

func TestParseNumeric(t *testing.T) {
	wild := WildEntry(7, cookieN(0))
	canon := wild.Numeric()
	tests := []struct {
		name string
		line string
		want Entry
	}{
		{"canonical", canon, wild},
		{"no newline", strings.TrimSuffix(canon, "\n"), wild},
		{"upper case", strings.ToUpper(canon), wild},
		{"crlf", strings.TrimSuffix(canon, "\n") + "\r\n", wild},
		{"extra blanks", "  ffff\t0000   0001 3 7 0012 4d49542d4d414749432d434f4f4b49452d31 0010 000102030405060708090a0b0c0d0e0f  ", wild},
		{"no blanks", "ffff000000013700124d49542d4d414749432d434f4f4b49452d310010000102030405060708090a0b0c0d0e0f", wild},
		{"all empty", "0100 0000  0000  0000  0000 \n", Entry{Family: FamilyLocal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNumeric(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseNumericErrors(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		offset int64
		field  string
	}{
		{"empty", "", 0, "family"},
		{"short family", "ff", 2, "family"},
		{"bad family digit", "fgff 0000", 1, "family"},
		{"no address length", "ffff", 4, "address length"},
		{"address too short", "ffff 0004 0a00", 10, "address"},
		{"odd address", "0000 0001 a", 10, "address"},
		{"bad hex in data", "ffff 0000  0000  0000  0001 zz", 28, "data"},
		{"newline inside", "ffff 0000  0001 3\n7 0000  0000 ", 17, "number"},
		{"trailing text", "ffff 0000  0000  0000  0000  x", 29, "end of line"},
		{"two lines", "ffff 0000  0000  0000  0000 \nffff", 28, "end of line"},
		{"length beyond line", "ffff ffff 00", 10, "address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNumeric(tt.line)
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("err = %v, want *FormatError", err)
			}
			if fe.Offset != tt.offset || fe.Field != tt.field || fe.Line != 1 {
				t.Errorf("got line %d offset %d field %q, want 1 %d %q (%v)", fe.Line, fe.Offset, fe.Field, tt.offset, tt.field, err)
			}
		})
	}
}

func TestReadNumeric(t *testing.T) {
	a, b := WildEntry(1, cookieN(1)), LocalEntry("vm", 2, cookieN(2))
	in := "\n" + a.Numeric() + "   \n" + b.Numeric()
	got, err := ReadNumeric(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if !entriesEqual(got, []Entry{a, b}) {
		t.Errorf("got %v", got)
	}

	_, err = ReadNumeric(strings.NewReader(a.Numeric() + "\nffff 00zz\n"))
	fe, ok := errors.AsType[*FormatError](err)
	if !ok || fe.Line != 3 || fe.Field != "address length" || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("err = %v, want *FormatError at line 3", err)
	}

	_, err = ReadNumeric(strings.NewReader(strings.Repeat("0", 600000)))
	if fe, ok := errors.AsType[*FormatError](err); !ok || fe.Field != "line" {
		t.Errorf("overlong line: err = %v", err)
	}
}

func TestAppendHex4(t *testing.T) {
	for _, tt := range []struct {
		v    int
		want string
	}{{0, "0000"}, {0x12, "0012"}, {0xffff, "ffff"}, {0x10000, "10000"}} {
		if got := string(appendHex4(nil, tt.v)); got != tt.want {
			t.Errorf("appendHex4(%#x) = %s, want %s", tt.v, got, tt.want)
		}
	}
}
