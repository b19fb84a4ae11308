package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"

	"github.com/xvmview/xvmview/internal/guesttext"
)

// Action is what Up did to a domain.
type Action int

// The actions of Up.
const (
	None    Action = iota // it was running
	Started               // it was shut off
	Resumed               // it was paused
	Woken                 // it was suspended by the guest
)

func (a Action) String() string {
	switch a {
	case Started:
		return "started"
	case Resumed:
		return "resumed"
	case Woken:
		return "woken"
	}
	return "already running"
}

// Up makes domain run: it starts it when it is shut off (after waiting for
// a shutdown under way to end), resumes it when paused and wakes it when
// suspended. It returns the state it found and what it did.
//
// Errors: *UnknownDomainError, *StartError with libvirt's message,
// *StateError for a crashed domain or one without a state, and errors of
// the connection or ctx.
func (c *Conn) Up(ctx context.Context, domain string) (State, Action, error) {
	d, err := c.lookup(ctx, domain)
	if err != nil {
		return NoState, None, err
	}
	st, err := c.state(ctx, d)
	if err != nil {
		return st, None, err
	}
	before := st
	if st == ShuttingDown {
		if st, err = c.waitState(ctx, d, func(s State) bool { return s != ShuttingDown }); err != nil {
			return before, None, fmt.Errorf("wait for domain %s to finish shutting down: %w", domain, err)
		}
	}
	do := func(action string, f func() error) error {
		if err := c.call(ctx, f); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return &StartError{URI: c.URI, Domain: domain, Action: action, Msg: message(err)}
		}
		return nil
	}
	switch st {
	case Running, Blocked:
		return before, None, nil
	case ShutOff:
		return before, Started, do("start", func() error { return c.l.DomainCreate(d) })
	case Paused:
		return before, Resumed, do("resume", func() error { return c.l.DomainResume(d) })
	case Suspended:
		return before, Woken, do("wake", func() error { return c.l.DomainPmWakeup(d, 0) })
	}
	return before, None, &StateError{URI: c.URI, Domain: domain, State: st}
}

// waitState polls d's state with backoff until ok accepts it or ctx ends.
func (c *Conn) waitState(ctx context.Context, d libvirt.Domain, ok func(State) bool) (State, error) {
	b := backoff{next: 50 * time.Millisecond, max: time.Second}
	for {
		st, err := c.state(ctx, d)
		if err != nil || ok(st) {
			return st, err
		}
		if err := b.wait(ctx); err != nil {
			return st, err
		}
	}
}

// backoff waits longer each time, from next up to max.
type backoff struct{ next, max time.Duration }

func (b *backoff) wait(ctx context.Context) error {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(b.next*3/2, b.max)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// probeTimeout bounds one try of WaitSSH.
const probeTimeout = 3 * time.Second

// Probe is one try to reach the guest's sshd; nil means it answered.
type Probe func(ctx context.Context) error

// SSHBanner is the Probe for an sshd at addr (host:port) that this machine
// reaches directly: it connects and reads the server's first line, which
// must start with "SSH-". A TCP connect alone proves nothing: a
// hypervisor's port forward (QEMU user networking) accepts before the
// guest listens.
func SSHBanner(addr string) Probe {
	return func(ctx context.Context) error { return probeSSH(ctx, addr) }
}

// WaitSSH waits until probe succeeds, trying again with backoff (100 ms
// growing to 2 s, each try bounded by 3 s) and checking before each try
// that domain still runs. addr names what probe reaches, for messages.
// waiting, if not nil, is called once with what it waits for.
//
// Errors: *BootTimeoutError when timeout passes first, *StoppedError when
// the domain stops, *UnknownDomainError, ctx's error when ctx ends.
func (c *Conn) WaitSSH(ctx context.Context, domain, addr string, probe Probe, timeout time.Duration, waiting func(string)) error {
	d, err := c.lookup(ctx, domain)
	if err != nil {
		return err
	}
	if waiting != nil {
		waiting(fmt.Sprintf("waiting up to %s for the sshd of domain %s at %s", timeout, domain, addr))
	}
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b := backoff{next: 100 * time.Millisecond, max: 2 * time.Second}
	last := "no answer yet"
	st := NoState
	for {
		if st, err = c.state(bctx, d); err != nil {
			break
		}
		switch st {
		case ShutOff, Crashed:
			return &StoppedError{Domain: domain, State: st}
		}
		if st.Active() {
			pctx, pcancel := context.WithTimeout(bctx, probeTimeout)
			perr := probe(pctx)
			pcancel()
			if perr == nil {
				return nil
			}
			last = guesttext.Line(perr.Error())
		} else {
			last = "the domain is " + st.String()
		}
		if err = b.wait(bctx); err != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &BootTimeoutError{Domain: domain, Addr: addr, Timeout: timeout, State: st, Last: last}
}

// probeSSH connects to addr and reads the server's first line, which must
// start with "SSH-".
func probeSSH(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			return oe.Err
		}
		return err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(dl)
	// RFC 4253 lets a server send other lines before its version; sshd
	// does not. 255 bytes is the longest version line.
	line, err := bufio.NewReaderSize(conn, 256).ReadSlice('\n')
	if strings.HasPrefix(string(line), "SSH-") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("connected, but no SSH banner yet (%v)", shortNetErr(err))
	}
	return errors.New("connected, but the answer is not SSH")
}

func shortNetErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// Stop shuts domain down: it presses the ACPI power button, waits up to
// grace for the domain to be shut off, then forces it off (libvirt's
// destroy). A domain that is already shut off is left alone. It reports
// whether the domain had to be forced off, because it ignored the button
// or refused it (a paused domain, one without ACPI).
func (c *Conn) Stop(ctx context.Context, domain string, grace time.Duration) (forced bool, err error) {
	d, err := c.lookup(ctx, domain)
	if err != nil {
		return false, err
	}
	st, err := c.state(ctx, d)
	if err != nil || st == ShutOff {
		return false, err
	}
	aerr := c.call(ctx, func() error { return c.l.DomainShutdownFlags(d, libvirt.DomainShutdownAcpiPowerBtn) })
	if aerr == nil {
		gctx, cancel := context.WithTimeout(ctx, grace)
		st, err = c.waitState(gctx, d, func(s State) bool { return s == ShutOff })
		cancel()
		if err == nil && st == ShutOff {
			return false, nil
		}
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	derr := c.call(ctx, func() error { return c.l.DomainDestroyFlags(d, 0) })
	if derr != nil {
		// It may have gone off by itself in the meantime.
		if st, err := c.state(ctx, d); err == nil && st == ShutOff {
			return false, nil
		}
		return true, fmt.Errorf("force domain %s off: %s", domain, message(derr))
	}
	return true, nil
}
