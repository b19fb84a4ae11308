package desktop

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// TestNotifier shows, replaces and withdraws a notification on a real
// private session bus, whose notification service records the calls.
func TestNotifier(t *testing.T) {
	bus := testguest.StartSessionBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := NewNotifier(ctx, bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Show(ctx, "Starting web", "waiting for <the login> & more", UrgencyLow, -1); err != nil {
		t.Fatal(err)
	}
	if err := n.Show(ctx, "web did not start", "cannot reach guest", UrgencyCritical, 0); err != nil {
		t.Fatal(err)
	}
	got, err := bus.WaitNotifications(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	first, second := got[0], got[1]
	if first.AppName != "xvmview" || first.Summary != "Starting web" || first.Body != "waiting for &lt;the login&gt; &amp; more" ||
		first.Urgency != UrgencyLow || first.ReplaceID != 0 {
		t.Errorf("first notification = %+v", first)
	}
	if second.ReplaceID != first.ID || second.Summary != "web did not start" || second.Urgency != UrgencyCritical || second.Timeout != 0 {
		t.Errorf("second notification = %+v, want it to replace %d", second, first.ID)
	}
	if err := n.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if c := bus.Closed(); len(c) != 1 || c[0] != first.ID {
		t.Errorf("closed %v, want [%d]", c, first.ID)
	}
}

func TestNotifierNoBus(t *testing.T) {
	if _, err := NewNotifier(context.Background(), "unix:path="+t.TempDir()+"/nobus"); err == nil {
		t.Fatal("NewNotifier without a bus succeeded")
	}
}

// TestNotifierSilentBus: a bus that accepts the connection and never
// answers (a hung dbus-daemon) costs the launch no more than NewNotifier's
// ctx, and the connection is not left open.
func TestNotifierSilentBus(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bus")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	closed := make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c) // reads the AUTH line, answers nothing
		close(closed)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := NewNotifier(ctx, "unix:path="+sock)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("NewNotifier on a silent bus succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NewNotifier on a silent bus still waits after 10 s")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection to the silent bus is still open")
	}
}
