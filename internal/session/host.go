package session

import (
	"context"
	"io"
	"log"
	"time"

	"github.com/jezek/xgb"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// TuneProcess makes the process-wide settings of a launcher: the X
// forward's runtime settings (guest.TuneProcess) and a silent xgb, which
// would log every closed connection. For main, not for a library caller.
func TuneProcess() {
	xgb.Logger = log.New(io.Discard, "", 0)
	guest.TuneProcess()
}

// HostDisplay is the display Xephyr draws its window on, as the launcher's
// environment names it.
type HostDisplay struct {
	Display    string // DISPLAY; "" when unset
	Xauthority string // its cookie's file, as libXau finds it (xauth.FileName)
}

// HostDisplayFrom reads DISPLAY, XAUTHORITY and HOME with getenv.
func HostDisplayFrom(getenv func(string) string) HostDisplay {
	return HostDisplay{Display: getenv("DISPLAY"), Xauthority: xauth.FileName(getenv)}
}

// NoDisplayError means there is no host display: DISPLAY is not set.
type NoDisplayError struct{}

func (NoDisplayError) Error() string { return "no host display: DISPLAY is not set" }

// HostDisplayError means the host display could not be opened.
type HostDisplayError struct {
	Display string
	Err     error // names the display and says what failed
}

func (e *HostDisplayError) Error() string { return e.Err.Error() }
func (e *HostDisplayError) Unwrap() error { return e.Err }

// HostQueryTimeout bounds asking the host display for its size, DPI and
// keyboard: a display that does not answer quickly only costs the defaults.
const HostQueryTimeout = 3 * time.Second

// Open connects to the host display and reads its screen size, physical
// size and keyboard, for the nested display to match (Facts.Host). The
// connection stays open until release is called, after the launch: a host
// server whose last client leaves resets, and Xephyr connecting meanwhile
// would fail. ctx and HostQueryTimeout bound the query.
//
// It returns NoDisplayError when DISPLAY is unset and *HostDisplayError
// when the display cannot be opened or queried.
func (h HostDisplay) Open(ctx context.Context) (facts *xephyr.HostFacts, release func(), err error) {
	if h.Display == "" {
		return nil, nil, NoDisplayError{}
	}
	ctx, cancel := context.WithTimeout(ctx, HostQueryTimeout)
	defer cancel()
	c, err := xephyr.OpenHost(ctx, h.Display, h.Xauthority)
	if err != nil {
		return nil, nil, &HostDisplayError{Display: h.Display, Err: err}
	}
	return &c.Facts, c.Close, nil
}

// GuestConfigError means the profile's guest could not be resolved from
// ssh_config and the profile's overrides.
type GuestConfigError struct {
	Profile string
	Err     error
}

func (e *GuestConfigError) Error() string { return "profile " + e.Profile + ": " + e.Err.Error() }
func (e *GuestConfigError) Unwrap() error { return e.Err }

// SSHConfig says where the user's SSH files are (guest.Config); the zero
// value means the usual places.
type SSHConfig = guest.Config

// ResolveGuest works out how to reach the guest of the remote profile p:
// ssh_config (found as cfg says; zero = the usual places) with the
// profile's user, port and identity_file over it. It returns
// *GuestConfigError.
func ResolveGuest(p profile.Profile, cfg SSHConfig) (guest.Target, error) {
	t, err := guest.Resolve(p.Host, guest.Overrides{User: p.User, Port: p.Port, IdentityFile: p.IdentityFile}, cfg)
	if err != nil {
		return guest.Target{}, &GuestConfigError{Profile: p.Name, Err: err}
	}
	return t, nil
}
