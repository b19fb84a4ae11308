package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xvmview/xvmview/internal/desktop"
)

// A launch from a desktop menu has no terminal: what it would print there
// (failures with their hints, notices) also goes to desktop notifications,
// and a start that takes longer than slowStart says what it waits for.

// slowStart is how long a start goes without a word.
const slowStart = time.Second

// notifyTimeout bounds each call to the notification service.
const notifyTimeout = 2 * time.Second

// desktopOut is one launch's notifications.
type desktopOut struct {
	profile string
	n       *desktop.Notifier // progress, then the failure: one notification, replaced

	mu      sync.Mutex
	waiting string // what the start waits for now
	shown   bool   // the progress notification is on screen
	started bool   // the app started: no more progress
	timer   *time.Timer
}

// desktopNotifications connects to the session bus when the invocation has
// no terminal (neither stdin nor stderr is one) and there is a bus; nil
// otherwise. It never starts a bus.
func (c *cli) desktopNotifications(profile string) *desktopOut {
	if desktop.Terminal(c.env.Stdin) || desktop.Terminal(c.env.Stderr) {
		return nil
	}
	addr := c.env.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" {
		rt := c.env.Getenv("XDG_RUNTIME_DIR")
		if rt == "" {
			return nil
		}
		sock := filepath.Join(rt, "bus")
		if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			return nil
		}
		addr = "unix:path=" + sock
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	n, err := desktop.NewNotifier(ctx, addr)
	if err != nil {
		c.noticef("no desktop notifications: %v", err)
		return nil
	}
	return &desktopOut{profile: profile, n: n}
}

// startTimer arms the slow-start notification; waiting is what the start
// waits for first.
func (d *desktopOut) startTimer(waiting string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waiting = waiting
	d.timer = time.AfterFunc(slowStart, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.started {
			d.shown = true
			d.showProgress()
		}
	})
}

// showProgress shows (or updates) the slow-start notification; d.mu held.
func (d *desktopOut) showProgress() {
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	_ = d.n.Show(ctx, "Starting "+d.profile, "Waiting for "+d.waiting+".", desktop.UrgencyLow, -1)
}

// wait says what the start waits for now.
func (d *desktopOut) wait(what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || what == d.waiting {
		return
	}
	d.waiting = what
	if d.shown {
		d.showProgress()
	}
}

// running ends the progress: the app has started.
func (d *desktopOut) running() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return
	}
	d.started = true
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.shown {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		_ = d.n.Withdraw(ctx)
		d.shown = false
	}
}

// failed shows the failure with its hint, as the terminal shows them; it
// replaces the progress notification and stays until dismissed.
func (d *desktopOut) failed(errs []string, hint string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started = true
	if d.timer != nil {
		d.timer.Stop()
	}
	body := "error: " + strings.Join(errs, "\nerror: ")
	if hint != "" {
		body += "\nhint: " + hint
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	_ = d.n.Show(ctx, d.profile+" did not run", body, desktop.UrgencyCritical, 0)
}

// notice shows a notice of its own.
func (d *desktopOut) notice(msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	_ = d.n.Another().Show(ctx, "xvmview: "+d.profile, msg, desktop.UrgencyNormal, -1)
}

func (d *desktopOut) close() {
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
	d.n.Close()
}

// waitingFor says what a start waits for after phase, the last one done;
// "" when the start is over.
func waitingFor(phase, guest string) string {
	login := "the login to " + guest
	switch {
	case guest == "" && strings.HasPrefix(phase, "started "):
		return ""
	case strings.HasPrefix(phase, "started ") && strings.Contains(phase, " on "):
		return ""
	case strings.HasPrefix(phase, "waiting for domain "):
		// The VM behind the guest boots first (session's vm.go).
		d, _, _ := strings.Cut(strings.TrimPrefix(phase, "waiting for domain "), "'s sshd")
		return "the VM " + d + " to boot"
	case strings.HasPrefix(phase, "runtime directory"), strings.HasPrefix(phase, "domain ") && strings.Contains(phase, " is "):
		if guest == "" {
			return "Xephyr to start"
		}
		return "Xephyr to start and " + login
	case strings.HasPrefix(phase, "Xephyr ready"), strings.HasPrefix(phase, "nested display refuses"):
		if guest == "" {
			return "the app to start"
		}
		return login
	case strings.HasPrefix(phase, "logged in"), strings.HasPrefix(phase, "guest's localhost"),
		strings.HasPrefix(phase, "cookie written"), strings.HasPrefix(phase, "started "):
		return "the guest's programs to start"
	}
	return "the start"
}
