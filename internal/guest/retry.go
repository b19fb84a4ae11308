package guest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"time"
)

// Handshake retries: sshd's MaxStartups (OpenSSH default 10:30:100) closes,
// at random, new connections while more than 10 are between connect and
// login; 16 launches at once saw 1-2 of them fail with "handshake failed:
// EOF". A login takes about 150 ms, so a slot frees up soon.
const (
	firstHandshakeWait = 50 * time.Millisecond
	maxHandshakeWait   = time.Second
	// maxHandshakeTries bounds the tries when ctx has no deadline.
	maxHandshakeTries = 12
)

// HandshakeDroppedError means the guest's sshd closed the connection before
// the key exchange on every try: it is refusing connections (too many logins
// at once for its MaxStartups, or it is shutting down).
type HandshakeDroppedError struct {
	Addr  string // host:port
	Tries int
	Err   error // the last try's error
}

func (e *HandshakeDroppedError) Error() string {
	return fmt.Sprintf("guest %s closed the SSH connection before the key exchange, %d times in a row (last: %v)",
		e.Addr, e.Tries, e.Err)
}

func (e *HandshakeDroppedError) Unwrap() error { return e.Err }

// closedEarly reports whether err is the guest closing the connection: an
// end of input or a reset, as sshd does to a connection it drops.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// backoff is a jittered exponential wait: each next is about twice the last,
// from firstHandshakeWait up to maxHandshakeWait, drawn uniformly from
// [w/2, 3w/2) so that launches dropped together come back apart.
type backoff struct{ w time.Duration }

func (b *backoff) next() time.Duration {
	if b.w == 0 {
		b.w = firstHandshakeWait
	} else {
		b.w = min(2*b.w, maxHandshakeWait)
	}
	return b.w/2 + rand.N(b.w)
}
