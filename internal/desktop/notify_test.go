package desktop

import (
	"context"
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
	n, err := NewNotifier(bus.Address)
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
	if _, err := NewNotifier("unix:path=" + t.TempDir() + "/nobus"); err == nil {
		t.Fatal("NewNotifier without a bus succeeded")
	}
}
