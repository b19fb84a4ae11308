package memcg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/godbus/dbus/v5"
)

// The user's systemd manager on D-Bus.
const (
	systemdName  = "org.freedesktop.systemd1"
	systemdPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	managerIface = "org.freedesktop.systemd1.Manager"
)

// property is one (sv) of StartTransientUnit's a(sv).
type property struct {
	Name  string
	Value dbus.Variant
}

// auxUnit is one (sa(sv)) of StartTransientUnit's a(sa(sv)); none is sent.
type auxUnit struct {
	Name  string
	Props []property
}

// ScopeProperties are the properties Apply gives the scope for pid and a
// limit of n bytes: the PID, MemoryMax, MemorySwapMax 0 (no swap beyond
// the limit: a guest cannot fill the host's swap through Xephyr either), a
// Description, and CollectMode inactive-or-failed (systemd forgets the
// scope once it is empty, even when the kernel's OOM killer ended it).
func scopeProperties(name string, pid int, n int64) []property {
	return []property{
		{"Description", dbus.MakeVariant("xvmview nested X server (" + name + ")")},
		{"PIDs", dbus.MakeVariant([]uint32{uint32(pid)})},
		{"MemoryMax", dbus.MakeVariant(uint64(n))},
		{"MemorySwapMax", dbus.MakeVariant(uint64(0))},
		{"CollectMode", dbus.MakeVariant("inactive-or-failed")},
	}
}

// busAddr is a way to the user's systemd.
type busAddr struct {
	what string // for messages
	addr string // D-Bus address
	bus  bool   // a bus (Hello, then the name org.freedesktop.systemd1); else systemd's private socket
}

// busAddrs lists where the user's systemd may answer: the session bus
// (DBUS_SESSION_BUS_ADDRESS, else XDG_RUNTIME_DIR/bus), then systemd's
// private socket XDG_RUNTIME_DIR/systemd/private (what systemctl --user
// uses when there is no bus).
func busAddrs(env []string) ([]busAddr, error) {
	if env == nil {
		env = os.Environ()
	}
	get := func(name string) string {
		v := ""
		for _, kv := range env {
			if n, val, ok := strings.Cut(kv, "="); ok && n == name {
				v = val
			}
		}
		return v
	}
	var out []busAddr
	rt := get("XDG_RUNTIME_DIR")
	if a := get("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		out = append(out, busAddr{"session bus " + a, a, true})
	} else if rt != "" {
		if p := filepath.Join(rt, "bus"); exists(p) {
			out = append(out, busAddr{"session bus " + p, "unix:path=" + p, true})
		}
	}
	if rt != "" {
		if p := filepath.Join(rt, "systemd", "private"); exists(p) {
			out = append(out, busAddr{"systemd socket " + p, "unix:path=" + p, false})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no session bus (DBUS_SESSION_BUS_ADDRESS unset, no bus or systemd/private in XDG_RUNTIME_DIR)")
	}
	return out, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startScope asks the user's systemd for the scope Name.scope holding pid
// with MemoryMax n, and waits for its job to finish, all within
// Config.ScopeTimeout. It returns the unit's name once the job is done.
func startScope(ctx context.Context, pid int, n int64, c Config) (string, error) {
	unit := c.Name + ".scope"
	addrs, err := busAddrs(c.Env)
	if err != nil {
		return "", err
	}
	timeout := cmp.Or(c.ScopeTimeout, DefaultScopeTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var why []string
	for _, a := range addrs {
		err := startScopeOn(ctx, a, unit, scopeProperties(c.Name, pid, n))
		if err == nil {
			return unit, nil
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%s: no answer within %v", a.what, timeout)
		}
		why = append(why, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return "", errors.New(strings.Join(why, "; "))
}

// startScopeOn does startScope's work over one connection, which it closes
// when ctx ends: nothing the other end does (or does not do) holds it
// longer.
func startScopeOn(ctx context.Context, a busAddr, unit string, props []property) error {
	conn, err := dbus.Dial(a.addr, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%s: %w", a.what, err)
	}
	defer conn.Close()
	done := make(chan error, 1)
	go func() { done <- callStart(ctx, conn, a, unit, props) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		conn.Close()
		return ctx.Err()
	}
}

func callStart(ctx context.Context, conn *dbus.Conn, a busAddr, unit string, props []property) error {
	if err := conn.Auth(nil); err != nil {
		return fmt.Errorf("%s: %w", a.what, err)
	}
	if a.bus {
		if err := conn.Hello(); err != nil {
			return fmt.Errorf("%s: %w", a.what, err)
		}
		// systemd sends JobRemoved to the client that queued the job.
		if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchObjectPath(systemdPath),
			dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("JobRemoved")); err != nil {
			return fmt.Errorf("%s: %w", a.what, err)
		}
	}
	sigs := make(chan *dbus.Signal, 16)
	conn.Signal(sigs)
	var job dbus.ObjectPath
	err := conn.Object(systemdName, systemdPath).CallWithContext(ctx, managerIface+".StartTransientUnit", 0,
		unit, "fail", props, []auxUnit{}).Store(&job)
	if err != nil {
		return fmt.Errorf("%s: StartTransientUnit %s: %w", a.what, unit, err)
	}
	// The job's end may have come before the reply: sigs holds it.
	for {
		select {
		case s, ok := <-sigs:
			if !ok {
				return fmt.Errorf("%s: connection closed before job %s ended", a.what, job)
			}
			if s.Name != managerIface+".JobRemoved" || s.Path != systemdPath || len(s.Body) != 4 {
				continue
			}
			if p, _ := s.Body[1].(dbus.ObjectPath); p != job {
				continue
			}
			if r, _ := s.Body[3].(string); r != "done" {
				return fmt.Errorf("%s: job for %s ended %q", a.what, unit, r)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
