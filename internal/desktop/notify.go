package desktop

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

// The freedesktop notification service (Desktop Notifications
// Specification 1.2) on the session bus.
const (
	notifyName   = "org.freedesktop.Notifications"
	notifyPath   = "/org/freedesktop/Notifications"
	notifyMethod = notifyName + ".Notify"
	closeMethod  = notifyName + ".CloseNotification"
)

// Urgency levels of a notification.
const (
	UrgencyLow      byte = 0
	UrgencyNormal   byte = 1
	UrgencyCritical byte = 2
)

// Notifier shows desktop notifications (org.freedesktop.Notifications over
// the session D-Bus) for a launch that has no terminal. Each Notifier keeps
// one notification on screen: a new Show replaces the previous one.
type Notifier struct {
	conn *dbus.Conn
	end  context.CancelFunc // the connection's context
	mu   sync.Mutex
	id   uint32 // the notification on screen; 0: none
}

// NewNotifier connects to the session bus at address (a D-Bus address such
// as "unix:path=/run/user/1000/bus"). It returns an error when there is no
// bus there, or when the bus does not let us in (authentication, Hello)
// before ctx ends: a bus that accepts and never answers must not hold up
// the launch.
func NewNotifier(ctx context.Context, address string) (*Notifier, error) {
	// The connection lives on after ctx; while it is being set up, the end
	// of ctx closes it, which ends a wait on a silent bus.
	life, end := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, end)
	conn, err := dbus.Dial(address, dbus.WithContext(life))
	if err == nil {
		if err = conn.Auth(nil); err == nil {
			err = conn.Hello()
		}
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		end()
		if conn != nil {
			conn.Close()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to the session bus %s: no answer: %w", address, ctx.Err())
		}
		return nil, fmt.Errorf("connect to the session bus: %w", err)
	}
	return &Notifier{conn: conn, end: end}, nil
}

// Show puts a notification with summary and body (plain text: markup
// characters are escaped) on screen, replacing the one this Notifier showed
// before. timeoutMS is how long it stays (-1: the server's default, 0:
// until dismissed).
func (n *Notifier) Show(ctx context.Context, summary, body string, urgency byte, timeoutMS int32) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(urgency)}
	call := n.conn.Object(notifyName, notifyPath).CallWithContext(ctx, notifyMethod, 0,
		"xvmview", n.id, "", summary, escapeMarkup(body), []string{}, hints, timeoutMS)
	if call.Err != nil {
		return fmt.Errorf("desktop notification: %w", call.Err)
	}
	if err := call.Store(&n.id); err != nil {
		return fmt.Errorf("desktop notification: %w", err)
	}
	return nil
}

// Withdraw takes the notification this Notifier showed off the screen.
func (n *Notifier) Withdraw(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.id == 0 {
		return nil
	}
	id := n.id
	n.id = 0
	if err := n.conn.Object(notifyName, notifyPath).CallWithContext(ctx, closeMethod, 0, id).Err; err != nil {
		return fmt.Errorf("close desktop notification: %w", err)
	}
	return nil
}

// Another returns a Notifier on the same connection with a notification
// of its own: its Show does not replace this one's.
func (n *Notifier) Another() *Notifier { return &Notifier{conn: n.conn, end: n.end} }

// Close drops the bus connection (shared with Another's); what is on
// screen stays.
func (n *Notifier) Close() error {
	n.end()
	return n.conn.Close()
}

// escapeMarkup keeps a body's text from being read as the markup that
// notification servers may interpret (b, i, u, a, img).
var escapeMarkup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
