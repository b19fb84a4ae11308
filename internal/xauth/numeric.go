package xauth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

const hexDigits = "0123456789abcdef"

// Numeric returns the entry as one line of `xauth nlist` output, newline
// included, exactly as xauth's dump_numeric prints it: the family as %04x,
// then for address, number, name and data a space, the length as %04x, a
// space and the bytes in lowercase hex. For example the Wild entry for
// display 7:
//
//	ffff 0000  0001 37 0012 4d49542d...2d31 0010 <32 hex digits>
//
// The line holds the secret in hex: pipe it to `xauth nmerge -`, never log
// it. A field longer than 65535 bytes (see Write) gives a line xauth rejects.
func (e Entry) Numeric() string { return string(e.AppendNumeric(nil)) }

// AppendNumeric appends Numeric's line, newline included, to b.
func (e Entry) AppendNumeric(b []byte) []byte {
	b = appendHex4(b, int(e.Family))
	b = appendNumericField(b, e.Address)
	b = appendNumericField(b, e.Number)
	b = appendNumericField(b, e.Name)
	b = appendNumericField(b, e.Data)
	return append(b, '\n')
}

// appendHex4 is printf("%04x"): at least four digits.
func appendHex4(b []byte, v int) []byte {
	n := 4
	for v>>(4*n) != 0 {
		n++
	}
	for i := n - 1; i >= 0; i-- {
		b = append(b, hexDigits[(v>>(4*i))&0xf])
	}
	return b
}

func appendNumericField[T string | []byte](b []byte, s T) []byte {
	b = append(b, ' ')
	b = appendHex4(b, len(s))
	b = append(b, ' ')
	for i := 0; i < len(s); i++ {
		b = append(b, hexDigits[s[i]>>4], hexDigits[s[i]&0xf])
	}
	return b
}

// WriteNumeric writes entries as `xauth nlist` lines, the input `xauth nmerge
// -` reads, with one Write call. It writes nothing and returns an error if a
// field is longer than 65535 bytes; other errors come from w.
func WriteNumeric(w io.Writer, entries []Entry) error {
	var b []byte
	for i, e := range entries {
		if err := e.check(); err != nil {
			return fmt.Errorf("encode entry %d: %w", i, err)
		}
		b = e.AppendNumeric(b)
	}
	_, err := w.Write(b)
	return err
}

// numScanner reads hex digits the way xauth's read_numeric does: white space
// other than newline may appear before any digit.
type numScanner struct {
	s   string
	off int
}

func isNumSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// digit returns the next hex digit's value, or a FormatError naming field.
func (sc *numScanner) digit(field string) (byte, error) {
	for sc.off < len(sc.s) && isNumSpace(sc.s[sc.off]) {
		sc.off++
	}
	if sc.off == len(sc.s) || sc.s[sc.off] == '\n' {
		return 0, &FormatError{Offset: int64(sc.off), Field: field, Reason: "line ends early"}
	}
	v, ok := unhex(sc.s[sc.off])
	if !ok {
		return 0, &FormatError{Offset: int64(sc.off), Field: field, Reason: fmt.Sprintf("%q is not a hex digit", sc.s[sc.off])}
	}
	sc.off++
	return v, nil
}

func (sc *numScanner) short(field string) (int, error) {
	v := 0
	for range 4 {
		d, err := sc.digit(field)
		if err != nil {
			return 0, err
		}
		v = v<<4 | int(d)
	}
	return v, nil
}

func (sc *numScanner) bytes(field string, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	for sc.off < len(sc.s) && isNumSpace(sc.s[sc.off]) {
		sc.off++
	}
	// Each byte needs at least two characters: refuse early rather than
	// allocate for a length the line cannot hold.
	if 2*n > len(sc.s)-sc.off {
		return nil, &FormatError{Offset: int64(sc.off), Field: field, Reason: fmt.Sprintf("line too short for %d bytes", n)}
	}
	b := make([]byte, n)
	for i := range b {
		hi, err := sc.digit(field)
		if err != nil {
			return nil, err
		}
		lo, err := sc.digit(field)
		if err != nil {
			return nil, err
		}
		b[i] = hi<<4 | lo
	}
	return b, nil
}

// ParseNumeric parses one line of `xauth nlist` output (as Numeric prints it;
// the trailing newline is optional). Like xauth's nmerge it accepts white
// space before any hex digit and either case; unlike xauth, which reads any
// other character as a zero digit, it rejects non-hex characters. Errors are
// *FormatError with Line 1, the byte offset within line and the field.
func ParseNumeric(line string) (Entry, error) {
	e, err := parseNumeric(line)
	if fe, ok := errors.AsType[*FormatError](err); ok {
		fe.Line = 1
	}
	return e, err
}

func parseNumeric(line string) (Entry, error) {
	sc := numScanner{s: line}
	fam, err := sc.short("family")
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Family: Family(fam)}
	var fields [4][]byte
	for i, name := range fieldNames {
		n, err := sc.short(name + " length")
		if err != nil {
			return Entry{}, err
		}
		if fields[i], err = sc.bytes(name, n); err != nil {
			return Entry{}, err
		}
	}
	for sc.off < len(line) && isNumSpace(line[sc.off]) {
		sc.off++
	}
	if sc.off < len(line) && !(line[sc.off] == '\n' && sc.off == len(line)-1) {
		return Entry{}, &FormatError{Offset: int64(sc.off), Field: "end of line", Reason: "unexpected text after the data"}
	}
	e.Address, e.Number, e.Name, e.Data = fields[0], string(fields[1]), string(fields[2]), fields[3]
	return e, nil
}

// ReadNumeric parses `xauth nlist` output: one entry per line. Blank lines
// are skipped (xauth stops reading at one). Errors are *FormatError with
// the line number set, a line or entry count beyond the limits, or r's error.
func ReadNumeric(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	// A line holds at most 4 + 4*(6+2*65535) characters.
	sc.Buffer(make([]byte, 0, 4096), 4+4*(6+2*maxField)+2)
	var entries []Entry
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimLeft(text, " \t\r\v\f") == "" {
			continue
		}
		if len(entries) == MaxEntries {
			return nil, &FormatError{Line: line, Field: "family", Reason: fmt.Sprintf("more than the limit of %d entries", MaxEntries)}
		}
		e, err := parseNumeric(text)
		if err != nil {
			if fe, ok := errors.AsType[*FormatError](err); ok {
				fe.Line = line
			}
			return nil, err
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &FormatError{Line: line + 1, Field: "line", Reason: "longer than any valid entry"}
		}
		return nil, fmt.Errorf("read numeric Xauthority lines: %w", err)
	}
	return entries, nil
}
