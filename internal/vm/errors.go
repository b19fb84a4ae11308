package vm

import (
	"fmt"
	"time"
)

// NoDaemonError means no libvirt daemon answers on the socket for a URI.
type NoDaemonError struct {
	URI    string
	Socket string // the socket path(s) tried
	Err    error
}

func (e *NoDaemonError) Error() string {
	return fmt.Sprintf("no libvirt daemon for %s at %s: %v", e.URI, e.Socket, e.Err)
}

func (e *NoDaemonError) Unwrap() error { return e.Err }

// PermissionError means the libvirt daemon's socket or the daemon itself
// (its polkit or access-control check) refused us.
type PermissionError struct {
	URI    string
	Socket string
	Err    error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("no permission to use libvirt at %s (%s): %v", e.Socket, e.URI, e.Err)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// ConnectError means the daemon refused to open the URI for a reason other
// than permissions, such as a driver it does not have.
type ConnectError struct {
	URI string
	Msg string // libvirt's own message, one line, bounded
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("libvirt refused to open %s: %s", e.URI, e.Msg)
}

// UnknownDomainError means the connection has no domain of that name.
type UnknownDomainError struct {
	URI    string
	Domain string
	Known  []string // the domains it has (at most 20, then "..."); nil if unknown
}

func (e *UnknownDomainError) Error() string {
	return fmt.Sprintf("libvirt at %s has no domain %q", e.URI, e.Domain)
}

// StartError means libvirt could not start (or resume, or wake) a domain.
type StartError struct {
	URI    string
	Domain string
	Action string // "start", "resume" or "wake"
	Msg    string // libvirt's own message, one line, bounded
}

func (e *StartError) Error() string {
	return fmt.Sprintf("libvirt could not %s domain %s: %s", e.Action, e.Domain, e.Msg)
}

// StateError means the domain is in a state xvmview does not change by
// itself, such as crashed.
type StateError struct {
	URI    string
	Domain string
	State  State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("domain %s is %s", e.Domain, e.State)
}

// BootTimeoutError means a domain's sshd did not answer within the boot
// timeout.
type BootTimeoutError struct {
	Domain  string
	Addr    string
	Timeout time.Duration
	State   State  // the domain's state when the time ran out
	Last    string // why the last try failed
}

func (e *BootTimeoutError) Error() string {
	return fmt.Sprintf("domain %s (%s) did not answer SSH at %s within %s: %s", e.Domain, e.State, e.Addr, e.Timeout, e.Last)
}

// StoppedError means the domain stopped while xvmview waited for it.
type StoppedError struct {
	Domain string
	State  State
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("domain %s stopped while booting (%s)", e.Domain, e.State)
}
