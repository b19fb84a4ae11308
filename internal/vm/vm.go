// Package vm starts, resumes, watches and shuts down the libvirt domain (the
// VM) behind a guest. It talks libvirt's own RPC protocol over the daemon's
// unix socket with github.com/digitalocean/go-libvirt, which is pure Go: the
// xvmview binary stays static and needs neither libvirt's C library nor
// virsh. One code path serves every local driver that libvirt runs, QEMU/KVM
// (qemu:///system) and Xen (xen:///system) alike.
//
// Every call takes a context: when it ends, the connection to the daemon is
// closed, which ends the call (go-libvirt's own calls cannot be cancelled).
package vm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/xvmview/xvmview/internal/guesttext"
)

// State is a domain's state as libvirt reports it.
type State int

// The states of a domain (libvirt's virDomainState).
const (
	NoState      State = iota // libvirt knows no state
	Running                   // running
	Blocked                   // blocked on a resource: running for our purposes
	Paused                    // paused by libvirt or a user (virsh suspend)
	ShuttingDown              // being shut down
	ShutOff                   // not running
	Crashed                   // crashed (and kept so by on_crash = preserve)
	Suspended                 // suspended by the guest's power management (S3)
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Blocked:
		return "blocked"
	case Paused:
		return "paused"
	case ShuttingDown:
		return "shutting down"
	case ShutOff:
		return "shut off"
	case Crashed:
		return "crashed"
	case Suspended:
		return "suspended"
	default:
		return "no state"
	}
}

// Active reports whether the domain runs: its guest can answer.
func (s State) Active() bool { return s == Running || s == Blocked }

// Conn is a connection to a libvirt daemon. Its methods may be called from
// several goroutines; a call whose context ends closes the connection, and
// every later call then fails.
type Conn struct {
	URI    string // as given to Connect
	Socket string // the daemon's socket it reached

	l  *libvirt.Libvirt
	nc net.Conn

	closeOnce sync.Once
}

// Connect reaches the libvirt daemon for uri (a local URI: qemu:///system,
// qemu:///session, xen:///system, optionally qemu+unix:// and ?socket=PATH)
// over its unix socket and opens the driver's connection.
//
// It returns *NoDaemonError when no daemon listens on the socket,
// *PermissionError when the socket or the daemon refuses us, and
// *ConnectError when the daemon refuses the URI for another reason.
func Connect(ctx context.Context, uri string) (*Conn, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %w", uri, err)
	}
	sock, err := socketPath(u)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, &PermissionError{URI: uri, Socket: sock, Err: err}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to libvirt at %s: %w", sock, ctx.Err())
		}
		return nil, &NoDaemonError{URI: uri, Socket: sock, Err: err}
	}
	c := &Conn{URI: uri, Socket: sock, nc: nc, l: libvirt.NewWithDialer(dialers.NewAlreadyConnected(nc))}
	err = c.call(ctx, func() error { return c.l.ConnectToURI(libvirt.RemoteURI(u)) })
	if err != nil {
		nc.Close()
		var le libvirt.Error
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("connect to libvirt at %s: %w", sock, ctx.Err())
		case denied(err):
			return nil, &PermissionError{URI: uri, Socket: sock, Err: errors.New(message(err))}
		case errors.As(err, &le):
			return nil, &ConnectError{URI: uri, Msg: message(err)}
		}
		return nil, &NoDaemonError{URI: uri, Socket: sock, Err: err}
	}
	return c, nil
}

// socketPath is the daemon's socket for u: ?socket= if given, else the
// monolithic libvirtd's socket, else the driver's own daemon's (virtqemud,
// virtxend), whichever exists, as libvirt's client library picks it.
func socketPath(u *url.URL) (string, error) {
	if s := u.Query().Get("socket"); s != "" {
		return s, nil
	}
	driver, _, _ := strings.Cut(u.Scheme, "+")
	dir := "/run/libvirt"
	if u.Path == "/session" {
		rt := os.Getenv("XDG_RUNTIME_DIR")
		if rt == "" {
			home, _ := os.UserHomeDir()
			rt = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(rt, "libvirt")
	}
	cands := []string{filepath.Join(dir, "libvirt-sock"), filepath.Join(dir, "virt"+driver+"d-sock")}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		} else if errors.Is(err, fs.ErrPermission) {
			return "", &PermissionError{URI: u.String(), Socket: c, Err: err}
		}
	}
	return "", &NoDaemonError{URI: u.String(), Socket: strings.Join(cands, " or "), Err: fs.ErrNotExist}
}

// denied reports whether err, met while connecting, is the daemon refusing
// us: an authentication or access error, or polkit's check failing (which
// libvirt reports as an internal error about the system bus or polkit).
func denied(err error) bool {
	var le libvirt.Error
	if !errors.As(err, &le) {
		return false
	}
	switch libvirt.ErrorNumber(le.Code) {
	case libvirt.ErrAuthFailed, libvirt.ErrAuthCancelled, libvirt.ErrAuthUnavailable, libvirt.ErrAccessDenied, libvirt.ErrOperationDenied:
		return true
	}
	m := strings.ToLower(le.Message)
	return strings.Contains(m, "polkit") || strings.Contains(m, "system bus") || strings.Contains(m, "authentication")
}

// message is libvirt's own text of err, on one line and bounded: it may
// carry a hypervisor's stderr.
func message(err error) string {
	var le libvirt.Error
	if errors.As(err, &le) {
		return guesttext.Line(le.Message)
	}
	return guesttext.Line(err.Error())
}

// call runs f, closing the connection if ctx ends first (which makes f
// return). It returns ctx's error in that case.
func (c *Conn) call(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	err := f()
	if !stop() {
		return fmt.Errorf("libvirt at %s: %w", c.Socket, ctx.Err())
	}
	return err
}

// closeGrace bounds how long Close waits for the daemon to acknowledge.
const closeGrace = 2 * time.Second

// Close ends the connection: it tells the daemon, waiting at most
// closeGrace for it, and closes the socket. An error of the daemon's at
// this point changes nothing for the caller, so Close returns none.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		t := time.AfterFunc(closeGrace, func() { c.nc.Close() })
		_ = c.l.Disconnect()
		t.Stop()
		c.nc.Close()
	})
	return nil
}

// lookup finds domain, or returns *UnknownDomainError.
func (c *Conn) lookup(ctx context.Context, domain string) (libvirt.Domain, error) {
	var d libvirt.Domain
	err := c.call(ctx, func() (err error) {
		d, err = c.l.DomainLookupByName(domain)
		return err
	})
	if libvirt.IsNotFound(err) {
		return d, &UnknownDomainError{URI: c.URI, Domain: domain, Known: c.domainNames(ctx)}
	}
	if err != nil {
		return d, fmt.Errorf("look up domain %s: %s", domain, message(err))
	}
	return d, nil
}

// domainNames lists the domains the connection knows, sorted, at most 20;
// nil if that fails.
func (c *Conn) domainNames(ctx context.Context) []string {
	var ds []libvirt.Domain
	err := c.call(ctx, func() (err error) {
		ds, _, err = c.l.ConnectListAllDomains(1, 0)
		return err
	})
	if err != nil {
		return nil
	}
	var names []string
	for _, d := range ds {
		names = append(names, guesttext.Line(d.Name))
	}
	slices.Sort(names)
	if len(names) > 20 {
		names = append(names[:20], "...")
	}
	return names
}

// State returns domain's state. It returns *UnknownDomainError when the
// connection has no such domain.
func (c *Conn) State(ctx context.Context, domain string) (State, error) {
	d, err := c.lookup(ctx, domain)
	if err != nil {
		return NoState, err
	}
	return c.state(ctx, d)
}

func (c *Conn) state(ctx context.Context, d libvirt.Domain) (State, error) {
	var st int32
	err := c.call(ctx, func() (err error) {
		st, _, err = c.l.DomainGetState(d, 0)
		return err
	})
	if err != nil {
		return NoState, fmt.Errorf("state of domain %s: %s", d.Name, message(err))
	}
	switch libvirt.DomainState(st) {
	case libvirt.DomainRunning:
		return Running, nil
	case libvirt.DomainBlocked:
		return Blocked, nil
	case libvirt.DomainPaused:
		return Paused, nil
	case libvirt.DomainShutdown:
		return ShuttingDown, nil
	case libvirt.DomainShutoff:
		return ShutOff, nil
	case libvirt.DomainCrashed:
		return Crashed, nil
	case libvirt.DomainPmsuspended:
		return Suspended, nil
	}
	return NoState, nil
}
