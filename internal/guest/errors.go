package guest

import (
	"fmt"
	"strings"

	xknownhosts "golang.org/x/crypto/ssh/knownhosts"

	"github.com/xvmview/xvmview/internal/guesttext"
)

// HostKeyError means the guest's host key is not vouched for by known_hosts:
// the host is unknown (Changed false) or presents a different key than the one
// recorded (Changed true: possibly an attack). Nothing was sent to the guest.
type HostKeyError struct {
	Alias       string // the name the user gave (for `ssh ALIAS`)
	Host        string // host name as looked up in known_hosts
	Addr        string // host:port dialled
	Fingerprint string // SHA256 fingerprint of the key the guest presented, "SHA256:..."
	KeyType     string // e.g. "ssh-ed25519"
	Changed     bool
	KnownHosts  string // the known_hosts file to fix (for Changed: the file holding the old key)
	Line        int    // for Changed: the line of the old key in KnownHosts
	Jump        bool   // the host is a jump host on the way to the guest
	Declined    bool   // the user was asked about the unknown key and did not say yes
}

func (e *HostKeyError) Error() string {
	if e.Declined {
		return fmt.Sprintf("unknown host key for %s: %s key %s was not accepted; nothing was sent to it", e.Addr, e.KeyType, e.Fingerprint)
	}
	if e.Changed {
		return fmt.Sprintf("host key for %s has CHANGED: it now presents %s key %s, but %s line %d holds a different key",
			e.Addr, e.KeyType, e.Fingerprint, e.KnownHosts, e.Line)
	}
	return fmt.Sprintf("unknown host key for %s: %s key %s is not in %s", e.Addr, e.KeyType, e.Fingerprint, e.KnownHosts)
}

// KnownHostsName is the name known_hosts holds the guest under: Host, as
// "[Host]:port" when the port is not 22 (what `ssh-keygen -R` takes).
func (e *HostKeyError) KnownHostsName() string { return xknownhosts.Normalize(e.Addr) }

// UnreachableError means no connection to the guest (or a jump host) could
// be made.
type UnreachableError struct {
	Addr string // host:port
	Via  string // the jump host it was dialled through; "" for a direct connection
	Err  error
}

func (e *UnreachableError) Error() string {
	if e.Via != "" {
		return fmt.Sprintf("cannot reach %s through jump host %s: %s", e.Addr, e.Via, errText(e.Err))
	}
	return fmt.Sprintf("cannot reach guest at %s: %s", e.Addr, errText(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// AuthError means the guest refused every key offered.
type AuthError struct {
	User      string
	Addr      string
	Tried     []string // the keys offered, e.g. "agent: ssh-ed25519 SHA256:... me@host", "/home/me/.ssh/id_ed25519"
	Encrypted []string // identity files skipped because they are passphrase-protected and not in the agent
	Err       error
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "guest %s refused login as %s", e.Addr, e.User)
	if len(e.Tried) == 0 {
		b.WriteString(": no keys to offer (no agent keys, no usable identity file)")
	} else {
		fmt.Fprintf(&b, " with %s", strings.Join(e.Tried, ", "))
	}
	for _, f := range e.Encrypted {
		fmt.Fprintf(&b, "; %s is passphrase-protected and not in the agent", f)
	}
	return b.String()
}

func (e *AuthError) Unwrap() error { return e.Err }

// ExitError is a remote command's non-zero exit, as the guest's sshd
// reported it. Both fields come from the guest: Signal is made visible with
// guesttext.Line, and a status outside 0..255, which no program can have (SSH
// carries a uint32: a broken or hostile sshd may send 256, which an exit(2)
// would turn into 0), is not passed on: Status is then 1 and Claimed holds
// what the guest sent.
type ExitError struct {
	Status  int    // exit status 0..255; 128+N when killed by signal N
	Signal  string // signal name without "SIG" when killed by a signal, e.g. "KILL"
	Claimed int    // a status outside 0..255 the guest reported, else 0
}

func (e *ExitError) Error() string {
	switch {
	case e.Claimed != 0:
		return fmt.Sprintf("guest reported exit status %d, which no program can have (taken as %d)", e.Claimed, e.Status)
	case e.Signal != "":
		return fmt.Sprintf("guest command killed by signal %s", e.Signal)
	}
	return fmt.Sprintf("guest command exited with status %d", e.Status)
}

// newExitError makes the ExitError for a status and signal name the guest
// reported, checked as ExitError says.
func newExitError(status int, signal string) *ExitError {
	e := &ExitError{Status: status, Signal: guesttext.Line(signal)}
	if st, ok := guesttext.Status(status); !ok {
		e.Status, e.Claimed = st, status
	}
	return e
}

func errText(err error) string {
	s := err.Error()
	// net.OpError reads "dial tcp 10.0.0.2:22: connect: connection refused";
	// the address is in our message already.
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "dial ") {
		return s[i+2:]
	}
	return s
}
