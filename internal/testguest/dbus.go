package testguest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// SessionBus is a private D-Bus session bus (a real dbus-daemon) with a
// notification service on it that records every Notify call: what a
// desktop would show.
type SessionBus struct {
	Address string // for DBUS_SESSION_BUS_ADDRESS

	daemon *exec.Cmd
	conn   *dbus.Conn
	mu     sync.Mutex
	notes  []Notification
	closed []uint32
	next   uint32
	signal chan struct{}
}

// Notification is one org.freedesktop.Notifications.Notify call.
type Notification struct {
	ID        uint32
	AppName   string
	ReplaceID uint32
	Summary   string
	Body      string
	Urgency   byte
	Timeout   int32
}

// StartSessionBus starts dbus-daemon --session on a socket in a private
// directory and a notification service (org.freedesktop.Notifications) on
// it; both end at the test's cleanup. Without dbus-daemon the test skips
// (fails under CI=true).
func StartSessionBus(tb TB) *SessionBus {
	tb.Helper()
	bin := NeedProgram(tb, "dbus-daemon", "dbus-daemon")
	dir, err := os.MkdirTemp("", "xvt-bus-")
	if err != nil {
		tb.Fatalf("session bus: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "bus")
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--print-address=1", "--address=unix:path="+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("session bus: %v", err)
	}
	log := NewLogBuffer(64 << 10)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start dbus-daemon: %v", err)
	}
	b := &SessionBus{daemon: cmd, signal: make(chan struct{}, 1)}
	tb.Cleanup(func() {
		if b.conn != nil {
			b.conn.Close()
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("dbus-daemon output:\n%s", log.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case b.Address = <-addr:
	case <-time.After(startTimeout):
		tb.Fatalf("dbus-daemon printed no address: %s", log.String())
	}
	if b.Address == "" {
		tb.Fatalf("dbus-daemon printed no address: %s", log.String())
	}
	if err := b.serve(); err != nil {
		tb.Fatalf("notification service: %v", err)
	}
	return b
}

func (b *SessionBus) serve() error {
	conn, err := dbus.Dial(b.Address)
	if err != nil {
		return err
	}
	b.conn = conn
	if err := conn.Auth(nil); err != nil {
		return err
	}
	if err := conn.Hello(); err != nil {
		return err
	}
	if err := conn.Export(notifyService{b}, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		return err
	}
	r, err := conn.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue)
	if err != nil {
		return err
	}
	if r != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("org.freedesktop.Notifications: name not granted (%d)", r)
	}
	return nil
}

type notifyService struct{ b *SessionBus }

// Notify is the service's method (Desktop Notifications Specification).
func (s notifyService) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	b := s.b
	b.mu.Lock()
	id := replaces
	if id == 0 {
		b.next++
		id = b.next
	}
	n := Notification{ID: id, AppName: app, ReplaceID: replaces, Summary: summary, Body: body, Timeout: timeout}
	if u, ok := hints["urgency"].Value().(byte); ok {
		n.Urgency = u
	}
	b.notes = append(b.notes, n)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
	return id, nil
}

// CloseNotification is the service's method.
func (s notifyService) CloseNotification(id uint32) *dbus.Error {
	s.b.mu.Lock()
	s.b.closed = append(s.b.closed, id)
	s.b.mu.Unlock()
	return nil
}

// Notifications returns the Notify calls so far.
func (b *SessionBus) Notifications() []Notification {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Notification(nil), b.notes...)
}

// Closed returns the ids CloseNotification was called with.
func (b *SessionBus) Closed() []uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]uint32(nil), b.closed...)
}

// WaitNotifications waits until at least n Notify calls came, at most until
// ctx ends, and returns them.
func (b *SessionBus) WaitNotifications(ctx context.Context, n int) ([]Notification, error) {
	for {
		if got := b.Notifications(); len(got) >= n {
			return got, nil
		}
		select {
		case <-b.signal:
		case <-ctx.Done():
			return b.Notifications(), fmt.Errorf("%d of %d notifications: %w", len(b.Notifications()), n, ctx.Err())
		}
	}
}
