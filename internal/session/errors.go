package session

import (
	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// The errors of the packages below session that a launch, Check or
// FetchGuestKey return and a caller words for the user. They are aliases:
// errors.As finds them under either name, so the CLI needs no import of
// guest or xephyr.
type (
	HostKeyError           = guest.HostKeyError
	UnreachableError       = guest.UnreachableError
	AuthError              = guest.AuthError
	PassphraseError        = guest.PassphraseError
	ProxyCommandError      = guest.ProxyCommandError
	HandshakeDroppedError  = guest.HandshakeDroppedError
	ForwardingRefusedError = guest.ForwardingRefusedError
	NoKnownHostsError      = guest.NoKnownHostsError
	XephyrNotFoundError    = xephyr.NotFoundError
	XephyrBrokenError      = xephyr.BrokenError
	XephyrExitError        = xephyr.ExitError
)
