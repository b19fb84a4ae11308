package xauth

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
)

// Family is the address family of an Entry (X.h, Xauth.h).
type Family uint16

// The address families found in Xauthority files.
const (
	FamilyInternet      Family = 0     // Address: 4 bytes of IPv4
	FamilyInternet6     Family = 6     // Address: 16 bytes of IPv6
	FamilyLocalHost     Family = 252   // server-side "localhost" family
	FamilyKrb5Principal Family = 253   // Address: a Kerberos principal
	FamilyNetname       Family = 254   // Address: a secure RPC netname
	FamilyLocal         Family = 256   // Address: the host name (gethostname)
	FamilyWild          Family = 65535 // matches any address
)

// String returns the family's name, or "Family(N)" for others.
func (f Family) String() string {
	switch f {
	case FamilyInternet:
		return "Internet"
	case FamilyInternet6:
		return "Internet6"
	case FamilyLocalHost:
		return "LocalHost"
	case FamilyKrb5Principal:
		return "Krb5Principal"
	case FamilyNetname:
		return "Netname"
	case FamilyLocal:
		return "Local"
	case FamilyWild:
		return "Wild"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// Entry is one record of an Xauthority file. Data holds the secret: String,
// GoString, Format, MarshalText and LogValue never print it.
type Entry struct {
	Family  Family
	Address []byte // host name for Local, 4 or 16 bytes for Internet(6)
	Number  string // display number in ASCII decimal, "" matches any
	Name    string // authorization protocol, normally CookieName
	Data    []byte // the secret
}

// WildEntry returns the entry that matches display number display on any host:
// family Wild, empty address, MIT-MAGIC-COOKIE-1. It is the right entry for a
// guest that reaches the display through a tunnel.
func WildEntry(display int, c Cookie) Entry {
	return Entry{Family: FamilyWild, Number: strconv.Itoa(display), Name: CookieName, Data: c.Bytes()}
}

// LocalEntry returns the entry xauth writes for `add HOSTNAME/unix:N`: family
// Local, address hostname, MIT-MAGIC-COOKIE-1.
func LocalEntry(hostname string, display int, c Cookie) Entry {
	return Entry{Family: FamilyLocal, Address: []byte(hostname), Number: strconv.Itoa(display), Name: CookieName, Data: c.Bytes()}
}

// Equal reports whether e and o are the same record, Data included.
func (e Entry) Equal(o Entry) bool {
	return e.sameKey(o) && string(e.Data) == string(o.Data)
}

// sameKey is xauth's match_auth: equal family, address, number and name.
func (e Entry) sameKey(o Entry) bool {
	return e.Family == o.Family && string(e.Address) == string(o.Address) &&
		e.Number == o.Number && e.Name == o.Name
}

// check returns an error if a field is too long for the file format.
func (e Entry) check() error {
	for _, f := range []struct {
		name string
		n    int
	}{{"address", len(e.Address)}, {"number", len(e.Number)}, {"name", len(e.Name)}, {"data", len(e.Data)}} {
		if f.n > maxField {
			return fmt.Errorf("entry %s is %d bytes, more than the format's limit of %d", f.name, f.n, maxField)
		}
	}
	return nil
}

// addressString renders Address for humans: an IP for Internet families,
// quoted text otherwise.
func (e Entry) addressString() string {
	switch {
	case e.Family == FamilyInternet && len(e.Address) == 4:
		return netip.AddrFrom4([4]byte(e.Address)).String()
	case e.Family == FamilyInternet6 && len(e.Address) == 16:
		return "[" + netip.AddrFrom16([16]byte(e.Address)).String() + "]"
	}
	return strconv.Quote(string(e.Address))
}

// String returns a one-line description with Data redacted, for example
// `Local "vm":5 MIT-MAGIC-COOKIE-1 <redacted 16 bytes>`.
func (e Entry) String() string {
	var b strings.Builder
	b.WriteString(e.Family.String())
	b.WriteByte(' ')
	b.WriteString(e.addressString())
	b.WriteByte(':')
	b.WriteString(strconv.Quote(e.Number))
	b.WriteByte(' ')
	b.WriteString(strconv.Quote(e.Name))
	b.WriteString(" <redacted ")
	b.WriteString(strconv.Itoa(len(e.Data)))
	b.WriteString(" bytes>")
	return b.String()
}

// GoString returns Go syntax for the entry with Data redacted.
func (e Entry) GoString() string {
	return fmt.Sprintf("xauth.Entry{Family:%d, Address:%q, Number:%q, Name:%q, Data:<redacted %d bytes>}",
		uint16(e.Family), e.Address, e.Number, e.Name, len(e.Data))
}

// Format prints String for every verb (GoString for %#v), so %x, %q and %v
// never reveal Data.
func (e Entry) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(e.GoString()))
		return
	}
	_, _ = f.Write([]byte(e.String()))
}

// MarshalText returns String, so encoders such as encoding/json never see Data.
func (e Entry) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// LogValue returns String, so log/slog never prints Data.
func (e Entry) LogValue() slog.Value { return slog.StringValue(e.String()) }
