package xauth

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Limits on what Read and ReadNumeric accept. A real Xauthority file holds a
// few entries to a few hundred (sshd never removes its own); these bounds
// only stop a hostile or corrupt file from taking unbounded memory.
const (
	MaxFileSize = 16 << 20 // bytes in one file
	MaxEntries  = 1 << 16  // entries in one file
	maxField    = 0xffff   // a field's length is a big-endian u16
)

// FormatError reports malformed binary or numeric Xauthority data.
type FormatError struct {
	Line   int    // 1-based line of numeric input, 0 for binary input
	Offset int64  // byte offset of the bad field (within the line for numeric input)
	Field  string // "family", "address length", "address", ..., "data", "end of line"
	Reason string // what is wrong, never the field's content
}

func (e *FormatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("malformed numeric Xauthority line %d at byte %d (%s): %s", e.Line, e.Offset, e.Field, e.Reason)
	}
	return fmt.Sprintf("malformed Xauthority data at byte %d (%s): %s", e.Offset, e.Field, e.Reason)
}

// fieldNames are the binary format's fields in file order, after the family.
var fieldNames = [4]string{"address", "number", "name", "data"}

// Read decodes every entry of an Xauthority file. Unlike libXau, which stops
// silently at a truncated record, it returns a *FormatError naming the byte
// offset and field of a truncated record, and of data beyond MaxFileSize or
// MaxEntries. Other errors come from r. Empty input gives no entries and no
// error.
func Read(r io.Reader) ([]Entry, error) {
	buf, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read Xauthority data: %w", err)
	}
	if len(buf) > MaxFileSize {
		return nil, &FormatError{Offset: MaxFileSize, Field: "file", Reason: fmt.Sprintf("larger than the limit of %d bytes", MaxFileSize)}
	}
	return decode(buf)
}

// decode parses a whole file held in buf. Entries alias buf.
func decode(buf []byte) ([]Entry, error) {
	var entries []Entry
	off := 0
	for off < len(buf) {
		if len(entries) == MaxEntries {
			return nil, &FormatError{Offset: int64(off), Field: "family", Reason: fmt.Sprintf("more than the limit of %d entries", MaxEntries)}
		}
		if len(buf)-off < 2 {
			return nil, truncated(off, "family", 2, len(buf)-off)
		}
		e := Entry{Family: Family(binary.BigEndian.Uint16(buf[off:]))}
		off += 2
		var fields [4][]byte
		for i, name := range fieldNames {
			if len(buf)-off < 2 {
				return nil, truncated(off, name+" length", 2, len(buf)-off)
			}
			n := int(binary.BigEndian.Uint16(buf[off:]))
			off += 2
			if len(buf)-off < n {
				return nil, truncated(off, name, n, len(buf)-off)
			}
			fields[i] = buf[off : off+n : off+n]
			off += n
		}
		e.Address, e.Number, e.Name, e.Data = nilIfEmpty(fields[0]), string(fields[1]), internName(fields[2]), nilIfEmpty(fields[3])
		entries = append(entries, e)
	}
	return entries, nil
}

// internName avoids an allocation for the name nearly every entry has.
func internName(b []byte) string {
	if string(b) == CookieName {
		return CookieName
	}
	return string(b)
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func truncated(off int, field string, need, have int) *FormatError {
	return &FormatError{Offset: int64(off), Field: field, Reason: fmt.Sprintf("truncated: need %d bytes, have %d", need, have)}
}

// AppendBinary appends the entry in the Xauthority file format (libXau
// XauWriteAuth). It returns an error, and b unchanged, if a field is longer
// than 65535 bytes.
func (e Entry) AppendBinary(b []byte) ([]byte, error) {
	if err := e.check(); err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint16(b, uint16(e.Family))
	b = appendCounted(b, e.Address)
	b = appendCounted(b, e.Number)
	b = appendCounted(b, e.Name)
	b = appendCounted(b, e.Data)
	return b, nil
}

func appendCounted[T string | []byte](b []byte, s T) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// WriteTo writes the entry in the Xauthority file format with one Write. It
// returns an error if a field is longer than 65535 bytes or w fails.
func (e Entry) WriteTo(w io.Writer) (int64, error) {
	b, err := e.AppendBinary(nil)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// encode returns the file image of entries.
func encode(entries []Entry) ([]byte, error) {
	size := 0
	for _, e := range entries {
		size += 10 + len(e.Address) + len(e.Number) + len(e.Name) + len(e.Data)
	}
	b := make([]byte, 0, size)
	for i, e := range entries {
		var err error
		if b, err = e.AppendBinary(b); err != nil {
			return nil, fmt.Errorf("encode entry %d: %w", i, err)
		}
	}
	return b, nil
}

// Write writes entries in the Xauthority file format, in order, with one
// Write call. It writes nothing and returns an error if any field is longer
// than 65535 bytes; other errors come from w.
func Write(w io.Writer, entries []Entry) error {
	b, err := encode(entries)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
