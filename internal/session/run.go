package session

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/xvmview/xvmview/internal/frame"
	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/memcg"
	"github.com/xvmview/xvmview/internal/procfs"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// Options are the launcher's side of a run: where output goes and what to
// report. The zero value runs quietly with output discarded.
//
// Everything Run writes to Stdout, Stderr and XephyrStderr passed through a
// guesttext.Writer: each line made visible (no terminal escapes), labelled
// "[PROFILE] " ("[Xephyr] "), and at most OutputCap bytes per writer.
type Options struct {
	Stdout, Stderr io.Writer                            // the app's and window manager's output
	Progress       func(phase string, at time.Duration) // --verbose: each phase with the time since start
	Notice         func(msg string)                     // one-line warnings for the user
	Log            func(msg string)                     // lines for the session log only: the background stale cleanup's
	Screenshot     string                               // save a PNG of the nested display once the app's first window shows
	XephyrStderr   io.Writer                            // Xephyr's own chatter; nil = dropped (its tail is in startup errors)
	OutputCap      int64                                // bytes passed on per writer; 0 = DefaultOutputCap
	// Ask asks the user for key passphrases and about an unknown host key
	// (nil: never asked; encrypted keys need the agent, unknown keys are
	// refused). The user's time to answer does not count against the
	// start timeout: the login gets AskTimeout more.
	Ask Asker
	// CannotAsk is the error (matched with errors.Is) by which Ask says it
	// cannot ask: the login then goes on as without Ask.
	CannotAsk error
}

// DefaultOutputCap bounds how much of the guest's output one session passes
// on to each of Stdout and Stderr: past it one line says the output was cut
// and the rest is dropped, so a guest cannot flood the terminal or the log.
const DefaultOutputCap = 16 << 20

// AskTimeout is how long a login that asks the user may take beyond the
// start timeout.
const AskTimeout = 5 * time.Minute

// End says why a session ended.
type End int

// The ways a session ends.
const (
	EndNone      End = iota // not ended (yet): the zero value
	EndApp                  // the app exited; Result.Status is its status
	EndXephyr               // the Xephyr window was closed (or the server died)
	EndGuestLost            // the SSH connection to the guest dropped
	EndCanceled             // the context was canceled: a signal
	EndAuthLost             // the guest's session Xauthority went (its keeper ended)
)

func (e End) String() string {
	switch e {
	case EndNone:
		return "not ended"
	case EndApp:
		return "the app exited"
	case EndXephyr:
		return "the Xephyr window was closed"
	case EndGuestLost:
		return "the connection to the guest was lost"
	case EndAuthLost:
		return "the guest lost the session's Xauthority"
	default:
		return "interrupted"
	}
}

// Result is how a session ended.
type Result struct {
	End     End
	Status  int // the app's exit status when End is EndApp
	Display int // the nested display's number
}

// GuestLostError is returned when the SSH connection to the guest dropped
// while the session ran.
type GuestLostError struct {
	Host string
	Err  error // what failed because of it, if anything
}

func (e *GuestLostError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("lost the SSH connection to %s: %v", e.Host, e.Err)
	}
	return fmt.Sprintf("lost the SSH connection to %s", e.Host)
}

func (e *GuestLostError) Unwrap() error { return e.Err }

// AuthLostError is returned when the guest's keeper of the session's
// Xauthority file ended while the session ran (killed on the guest, or it
// failed): the file is gone, so the guest's new X connections would be
// refused. The session is ended rather than left half working.
type AuthLostError struct {
	Host string
	Dir  string // the keeper's directory on the guest
	Err  error  // how the keeper ended (AuthFile.Err)
}

func (e *AuthLostError) Error() string {
	return fmt.Sprintf("the guest %s lost the session's Xauthority (%s): %v; new X connections from the guest would be refused, so the session was ended",
		e.Host, e.Dir, e.Err)
}

func (e *AuthLostError) Unwrap() error { return e.Err }

// OpenDisplayError is returned when the nested display accepted a client that
// had no cookie: the launch is aborted rather than run an open server.
type OpenDisplayError struct {
	Display int
	Err     error
}

func (e *OpenDisplayError) Error() string {
	return fmt.Sprintf("nested display :%d accepts clients without the cookie; aborted: %v", e.Display, e.Err)
}

// NoXauthError is returned when the guest has no xauth program.
type NoXauthError struct{ Host string }

func (e *NoXauthError) Error() string { return fmt.Sprintf("no xauth on guest %s", e.Host) }

// proc is a running app or window manager, here or on the guest.
type proc interface {
	Done() <-chan struct{}
	Wait() (int, error)
	Close(ctx context.Context) error
}

// Run executes the plan and blocks until the session ends, then tears it down.
// The error is nil when the session ran and ended normally (the app exited, the
// window was closed, or ctx was canceled); Result says how. Setup failures,
// a lost guest and teardown steps that could not be completed are errors.
//
// Sessions whose launcher died are cleaned up in the background meanwhile
// (CleanStale), reporting to o.Log only; Run stops that cleanup before it
// returns.
func Run(ctx context.Context, pl Plan, o Options) (res Result, err error) {
	r := &runner{pl: pl, o: o, start: time.Now()}
	r.wrapOutput()
	defer r.closeOutput(ctx)
	// A signal at any time, also during an ordinary teardown.
	stopOut := context.AfterFunc(ctx, r.stopOutput)
	defer stopOut()
	// After the teardown, nothing reports: a goroutine that outlived its
	// bounded wait stays silent.
	defer r.silence()
	stopCleanup := r.cleanStaleInBackground(ctx)
	defer stopCleanup()
	defer func() {
		if terr := r.teardown(ctx); terr != nil {
			err = errors.Join(err, terr)
		}
	}()
	res, err = r.run(ctx)
	if err != nil && res.End == EndNone && r.started {
		switch {
		case ctx.Err() != nil:
			// A signal during setup: not a failure, and no half-made error.
			return Result{End: EndCanceled, Display: res.Display}, nil
		case r.lost():
			return Result{End: EndGuestLost, Display: res.Display}, &GuestLostError{Host: r.pl.Guest.HostName, Err: err}
		}
	}
	return res, err
}

// lostGrace is how long a remote program's broken session waits for the
// SSH connection to report that it died, which it may do a moment later.
const lostGrace = 2 * time.Second

// lostWithin reports whether the SSH connection ends within d.
func (r *runner) lostWithin(d time.Duration) bool {
	if r.client == nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.client.Done():
		return true
	case <-t.C:
		return false
	}
}

// lost reports whether the SSH connection has ended.
func (r *runner) lost() bool {
	if r.client == nil {
		return false
	}
	select {
	case <-r.client.Done():
		return true
	default:
		return false
	}
}

type runner struct {
	pl    Plan
	o     Options
	start time.Time

	dir    *sessionDir
	state  State
	stack  []step
	cookie xauth.Cookie

	srv     *xephyr.Server
	frame   *frame.Frame // the trust frame on the host display
	clip    *clip        // the two clipboards; nil when the profile turns it off
	conn    *xgb.Conn
	client  *guest.Client
	auth    *guest.AuthFile     // the guest's session Xauthority; nil for a local profile
	outs    []*guesttext.Writer // the output writers (wrapOutput)
	started bool                // the session directory exists: errors after this may be a signal's doing

	reportMu sync.RWMutex // held (read) while Progress or Notice runs
	silent   bool         // Run returns: no more Progress or Notice
}

// step is one thing teardown undoes.
type step struct {
	name string
	undo func(ctx context.Context) error
}

func (r *runner) push(name string, undo func(ctx context.Context) error) {
	r.stack = append(r.stack, step{name, undo})
}

func (r *runner) phase(name string) {
	r.reportMu.RLock()
	defer r.reportMu.RUnlock()
	if r.o.Progress != nil && !r.silent {
		r.o.Progress(name, time.Since(r.start))
	}
}

func (r *runner) notice(format string, args ...any) {
	r.reportMu.RLock()
	defer r.reportMu.RUnlock()
	if r.o.Notice != nil && !r.silent {
		r.o.Notice(fmt.Sprintf(format, args...))
	}
}

// silence waits for the Progress and Notice calls under way and lets no
// more through.
func (r *runner) silence() {
	r.reportMu.Lock()
	r.silent = true
	r.reportMu.Unlock()
}

func (r *runner) saveState() {
	if err := r.dir.writeState(&r.state); err != nil {
		r.notice("%v", err)
	}
}

// wrapOutput puts a guesttext.Writer before each output writer (closeOutput
// flushes them). Stdout and Stderr share one when they are the same writer,
// so their lines do not mix.
func (r *runner) wrapOutput() {
	limit := cmp.Or(r.o.OutputCap, DefaultOutputCap)
	label := r.pl.Profile.Name
	wrap := func(w io.Writer, label string) io.Writer {
		if w == nil {
			return io.Discard
		}
		g := guesttext.NewWriter(w, label, limit)
		r.outs = append(r.outs, g)
		return g
	}
	same := sameWriter(r.o.Stdout, r.o.Stderr)
	r.o.Stdout = wrap(r.o.Stdout, label)
	if same {
		r.o.Stderr = r.o.Stdout
	} else {
		r.o.Stderr = wrap(r.o.Stderr, label)
	}
	if r.o.XephyrStderr != nil {
		r.o.XephyrStderr = wrap(r.o.XephyrStderr, "Xephyr")
	}
}

// closeOutput flushes and closes the output writers. After a signal (ctx
// done) a terminal that does not read (Ctrl-S, a stalled pipe) may hold a
// write of the guest's output: it waits at most outputCloseWait for that,
// and the process exits with the write undone.
func (r *runner) closeOutput(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, g := range r.outs {
			_ = g.Close()
		}
	}()
	if ctx.Err() == nil {
		<-done
		return
	}
	t := time.NewTimer(outputCloseWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// signalOutput is how much of the guest's output each stream (stdout,
// stderr, Xephyr's) still passes on after a signal, made visible and
// labelled: the last lines a program prints as it ends.
const signalOutput = 4 << 10

// outputCloseWait bounds the wait for the output writers after a signal.
const outputCloseWait = 200 * time.Millisecond

// stopOutput lets signalOutput more bytes of the guest's output through,
// then cuts it (after a signal): what its channels still hold, up to 2 MiB
// each, would otherwise keep the teardown writing to a slow terminal long
// after the user asked to stop.
func (r *runner) stopOutput() {
	for _, g := range r.outs {
		g.Stop(signalOutput)
	}
}

// sameWriter reports whether a and b are one writer (false for writers that
// cannot be compared).
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a != nil && a == b
}

// cleanStaleInBackground starts CleanStale for the runtime root with a
// deadline of its own, its notices going to the session log only, and
// returns what stops it and waits for it.
func (r *runner) cleanStaleInBackground(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithTimeout(ctx, staleTimeout)
	done := make(chan struct{})
	log := func(format string, args ...any) {
		if r.o.Log != nil {
			r.o.Log(guesttext.Line(fmt.Sprintf(format, args...)))
		}
	}
	go func() {
		defer close(done)
		CleanStale(ctx, r.pl.RuntimeRoot, log)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (r *runner) run(ctx context.Context) (Result, error) {
	pl := r.pl

	dir, err := newSessionDir(pl.RuntimeRoot)
	if err != nil {
		return Result{}, err
	}
	r.dir = dir
	r.started = true
	self, _ := procfs.ReadStat(os.Getpid())
	r.state = State{ID: dir.ID, Profile: pl.Profile.Name, LauncherPID: os.Getpid(), LauncherTime: self.StartTicks, Started: time.Now(), Display: -1}
	r.saveState()
	r.phase("runtime directory " + dir.Path)
	if pl.VM != nil {
		if err := r.vmUp(ctx); err != nil {
			return Result{}, err
		}
	}

	if r.cookie, err = xauth.NewCookie(); err != nil {
		return Result{}, err
	}
	// The server reads every record with a name it knows; the file must hold
	// the cookie before Xephyr starts, or Xephyr runs without access control.
	authFile := dir.file("server.xauth")
	if err := xauth.WriteFile(authFile, []xauth.Entry{{Family: xauth.FamilyWild, Name: xauth.CookieName, Data: r.cookie.Bytes()}}); err != nil {
		return Result{}, err
	}

	startCtx, cancelStart := context.WithTimeout(ctx, pl.Timeouts.Start)
	defer cancelStart()

	// The SSH login overlaps with Xephyr's start.
	type dialed struct {
		c   *guest.Client
		err error
	}
	dialc := make(chan dialed, 1)
	dialCtx, cancelDial := startCtx, context.CancelFunc(func() {})
	if r.o.Ask != nil {
		dialCtx, cancelDial = context.WithTimeout(ctx, pl.Timeouts.Start+AskTimeout)
	}
	defer cancelDial()
	if pl.Guest != nil {
		go func() {
			c, err := guest.Dial(dialCtx, *pl.Guest, guest.DialOptions{Prompt: newPrompter(r.o.Ask, r.o.CannotAsk)})
			if err == nil {
				// sshd's first answer after login comes late: let that
				// happen while Xephyr starts. A failure shows up later.
				_ = c.Ping(dialCtx)
			}
			dialc <- dialed{c, err}
		}()
	}
	// Whatever happens below, a finished dial is owned by the teardown.
	var dialOnce sync.Once
	awaitDial := func() (*guest.Client, error) {
		var d dialed
		dialOnce.Do(func() {
			d = <-dialc
			if d.c != nil {
				r.client = d.c
				r.push("ssh connection", func(context.Context) error { return d.c.Close() })
			}
		})
		return d.c, d.err
	}
	if pl.Guest != nil {
		// On an early return: stop a dial still under way, then collect it
		// so that teardown closes a connection that was made.
		defer func() { cancelStart(); cancelDial(); _, _ = awaitDial() }()
	}

	xo := pl.Xephyr
	xo.AuthFile = authFile
	xo.Stderr = r.o.XephyrStderr
	xo.Memcg = &memcg.Config{Name: XephyrCgroupPrefix + dir.ID}
	if err := r.openFrame(startCtx, &xo); err != nil {
		return Result{}, err
	}
	srv, err := xephyr.Start(startCtx, xo)
	if err != nil {
		return Result{}, err
	}
	r.srv = srv
	r.push("Xephyr", srv.CloseContext)
	r.state.XephyrPID, r.state.Display = srv.PID, srv.Display
	if srv.Memory.Owned() {
		r.state.XephyrCgroup = srv.Memory.Path
	}
	r.saveState()
	r.phase(fmt.Sprintf("Xephyr ready on :%d", srv.Display))
	if srv.Memory != nil {
		r.phase(fmt.Sprintf("Xephyr's memory limit: RLIMIT_DATA %d MiB; %s", xo.MemoryLimit>>20, srv.Memory))
	}
	if _, err := r.frame.Child(startCtx.Done()); err != nil {
		return Result{Display: srv.Display}, err
	}

	// Our own connection keeps -terminate from firing before the guest's
	// clients connect, and lets us watch windows map.
	conn, err := xephyr.Dial(startCtx, srv.Display, r.cookie)
	if err != nil {
		return Result{Display: srv.Display}, fmt.Errorf("connect to nested display :%d: %w", srv.Display, err)
	}
	r.conn = conn
	r.push("X connection", func(context.Context) error { conn.Close(); return nil })
	if err := xephyr.CheckRefusesCookieless(startCtx, srv.Display); err != nil {
		return Result{Display: srv.Display}, &OpenDisplayError{srv.Display, err}
	}
	r.watchMaps()
	r.phase("nested display refuses clients without the cookie")
	if err := r.startClipboard(startCtx); err != nil {
		return Result{Display: srv.Display}, err
	}

	var wm, app proc
	if pl.Guest == nil {
		wm, app, err = r.startLocal(ctx)
	} else {
		c, derr := awaitDial()
		if derr != nil {
			return Result{Display: srv.Display}, derr
		}
		r.phase("logged in to " + c.RemoteAddr())
		wm, app, err = r.startGuest(ctx, c)
	}
	if err != nil {
		return Result{Display: srv.Display}, err
	}
	r.state.Running = true
	r.saveState()
	return r.supervise(ctx, wm, app)
}

// startLocal runs the window manager and app on this machine against :N with
// a client Xauthority of their own.
func (r *runner) startLocal(ctx context.Context) (wm, app proc, err error) {
	n := r.srv.Display
	client := r.dir.file("client.xauth")
	if err := xauth.WriteFile(client, []xauth.Entry{xauth.WildEntry(n, r.cookie)}); err != nil {
		return nil, nil, err
	}
	env := []string{fmt.Sprintf("DISPLAY=:%d", n), "XAUTHORITY=" + client}
	if len(r.pl.WindowManager) > 0 {
		p, err := startLocal(r.pl.Xephyr.Env, env, r.pl.WindowManager, r.o.Stdout, r.o.Stderr, r.pl.Timeouts.Grace)
		if err != nil {
			return nil, nil, fmt.Errorf("start window manager: %w", err)
		}
		wm = p
		r.push("window manager", p.Close)
		r.waitWM(ctx, p)
	}
	p, err := startLocal(r.pl.Xephyr.Env, env, r.pl.Command, r.o.Stdout, r.o.Stderr, r.pl.Timeouts.Grace)
	if err != nil {
		return wm, nil, fmt.Errorf("start %s: %w", r.pl.Command[0], err)
	}
	r.push("app", p.Close)
	r.phase("started " + r.pl.Command[0])
	return wm, p, nil
}

// startGuest has the guest's keeper write the session's Xauthority file
// (cookie on stdin only), then starts the window manager and the app there
// with XAUTHORITY pointing at it.
func (r *runner) startGuest(ctx context.Context, c *guest.Client) (wm, app proc, err error) {
	n := r.srv.Display
	// gn is the display number the guest's clients use: Xephyr's own over
	// tcp, the forward's over ssh. Their Xauthority entry is for gn.
	var display string
	var gn int
	if r.pl.Transport == profile.TransportTCP {
		host := r.pl.DisplayHost
		if host == "" {
			ip := c.LocalIP()
			if ip == nil {
				return nil, nil, fmt.Errorf("transport tcp: the guest %s is reached through a jump host or ProxyCommand, so it cannot dial this machine's end of the connection: set display_host in the profile", r.pl.Guest.Alias)
			}
			host = ip.String()
		}
		display, gn = guestDisplay(host, n), n
		r.notice("transport tcp: X traffic and the cookie cross the network to %s in clear", r.pl.Guest.HostName)
	} else {
		fwd, err := c.ForwardX(ctx, r.srv.Socket(), firstForwardDisplay, guest.ForwardOptions{
			MaxConns: r.pl.Profile.MaxXConnections,
			Notice:   func(msg string) { r.notice("%s", msg) },
		})
		if err != nil {
			return nil, nil, err
		}
		r.push("X forwarding", func(context.Context) error { return fwd.Close() })
		display, gn = fmt.Sprintf("localhost:%d", fwd.Display), fwd.Display
		r.phase(fmt.Sprintf("guest's localhost:%d carried to :%d inside the SSH connection", fwd.Display, n))
	}

	// The cookie goes to a file of this session's own on a guest tmpfs,
	// which a guest-side keeper removes when its channel closes (teardown,
	// a dropped connection, a killed launcher): ~/.Xauthority is never
	// written, and neither teardown nor crash recovery needs a login for it.
	r.state.Guest = r.pl.Guest
	r.state.GuestDisplay = fmt.Sprintf(":%d", gn)
	r.saveState()
	actx, cancel := context.WithTimeout(ctx, r.pl.Timeouts.Start)
	af, err := c.NewAuthFile(actx, []byte(xauth.WildEntry(gn, r.cookie).Numeric()))
	cancel()
	if err != nil {
		var ee *guest.ExitError
		if errors.As(err, &ee) && ee.Status == 127 {
			return nil, nil, &NoXauthError{Host: r.pl.Guest.HostName}
		}
		return nil, nil, fmt.Errorf("write the session's Xauthority on %s: %w", r.pl.Guest.HostName, err)
	}
	r.auth = af
	r.push("guest session Xauthority", func(ctx context.Context) error {
		select {
		case <-af.Done():
			// Its keeper ended mid-session (supervise said so): a keeper
			// killed with SIGKILL left the directory. Remove it, if the
			// connection still works; the cookie dies with Xephyr anyway.
			_ = af.Close(ctx)
			if !r.lost() {
				_ = c.Run(ctx, "rm -rf -- "+guest.Quote(af.Dir), nil, io.Discard, io.Discard)
			}
			return nil
		default:
		}
		if err := af.Close(ctx); err != nil {
			if errors.Is(err, guest.ErrKeeperUnconfirmed) && ctx.Err() != nil {
				// The teardown's time ran out (after a signal it has
				// 1.5 s in all; a guest busy with a flood answers later):
				// the keeper removes the file when it sees its channel
				// close, which it now has. Not the user's to act on.
				r.notice("%v", err)
				return nil
			}
			return err
		}
		r.phase("guest session Xauthority removed")
		return nil
	})
	r.phase("cookie written to the guest's session Xauthority " + af.Path)

	env := []string{"DISPLAY=" + display, "XAUTHORITY=" + af.Path}
	if len(r.pl.WindowManager) > 0 {
		p, err := c.Start(ctx, r.guestProc(env, r.pl.WindowManager))
		if err != nil {
			return nil, nil, fmt.Errorf("start window manager on %s: %w", r.pl.Guest.HostName, err)
		}
		wm = p
		r.push("window manager", p.Close)
		r.waitWM(ctx, p)
	}
	p, err := c.Start(ctx, r.guestProc(env, r.pl.Command))
	if err != nil {
		return wm, nil, fmt.Errorf("start %s on %s: %w", r.pl.Command[0], r.pl.Guest.HostName, err)
	}
	r.push("app", p.Close)
	r.phase("started " + r.pl.Command[0] + " on " + r.pl.Guest.HostName)
	return wm, p, nil
}

// guestProc is how a guest program of the session runs: with the session's
// output and the configured grace between SIGTERM and SIGKILL.
func (r *runner) guestProc(env, argv []string) guest.ProcSpec {
	return guest.ProcSpec{Env: env, Argv: argv, Stdout: r.o.Stdout, Stderr: r.o.Stderr, Grace: r.pl.Timeouts.Grace}
}

// removeGuestDisplay removes the guest's ~/.Xauthority entries for display,
// over c while it works (c may be nil), else over a fresh login to t. Only
// sessions recorded by older versions, which wrote the cookie there, need it.
func removeGuestDisplay(ctx context.Context, c *guest.Client, t guest.Target, display string) error {
	var stderr headBuffer
	run := func(c *guest.Client) error {
		stderr.Reset()
		return c.Run(ctx, guestXauthRm(display), nil, io.Discard, &stderr)
	}
	err := errors.New("no connection")
	if c != nil {
		err = run(c)
	}
	var ee *guest.ExitError
	if err != nil && !errors.As(err, &ee) {
		// No connection, or it broke under us: log in again.
		nc, derr := guest.Dial(ctx, t, guest.DialOptions{})
		if derr != nil {
			return fmt.Errorf("remove guest Xauthority entry %s: %w", display, derr)
		}
		defer nc.Close()
		err = run(nc)
	}
	if err != nil {
		return fmt.Errorf("remove guest Xauthority entry %s on %s: %w (%s)", display, t.HostName, err, stderr.line())
	}
	return nil
}

// waitWM waits until a window manager owns the root window (it selected
// SubstructureRedirect), so the app's first window gets managed. A window
// manager that never gets there costs Timeouts.WMReady and a notice; one that
// exits first, only the notice.
func (r *runner) waitWM(ctx context.Context, wm proc) {
	root := xproto.Setup(r.conn).DefaultScreen(r.conn).Root
	deadline := time.NewTimer(r.pl.Timeouts.WMReady)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	// A reply may never come: an X client on the nested display that holds
	// a server grab stalls every other client, us included. The reply is
	// waited for in its own goroutine (which ends when the connection
	// closes at teardown), next to the deadline, the signal and the WM.
	type attrs struct {
		a   *xproto.GetWindowAttributesReply
		err error
	}
	replies := make(chan attrs, 1)
	ask := func() {
		cookie := xproto.GetWindowAttributes(r.conn, root)
		go func() {
			a, err := cookie.Reply()
			replies <- attrs{a, err}
		}()
	}
	ask()
	for {
		select {
		case a := <-replies:
			if a.err == nil && a.a.AllEventMasks&xproto.EventMaskSubstructureRedirect != 0 {
				r.phase("window manager ready")
				return
			}
			<-tick.C
			ask()
		case <-ctx.Done():
			return
		case <-wm.Done():
			st, _ := wm.Wait()
			r.notice("the window manager exited with status %d before it took over the display; starting the app without one", st)
			return
		case <-deadline.C:
			r.notice("the window manager did not take over the display within %s (or a client holds a server grab); starting the app anyway", r.pl.Timeouts.WMReady)
			return
		}
	}
}

// supervise waits for the first of: app exit, Xephyr exit, guest lost, ctx.
func (r *runner) supervise(ctx context.Context, wm, app proc) (Result, error) {
	res := Result{Display: r.srv.Display}
	var lost <-chan struct{}
	if r.client != nil {
		lost = r.client.Done()
	}
	var authDone <-chan struct{}
	if r.auth != nil {
		authDone = r.auth.Done()
	}
	var wmDone <-chan struct{}
	if wm != nil {
		select {
		case <-wm.Done(): // exited during startup; already reported
		default:
			wmDone = wm.Done()
		}
	}
	for {
		select {
		case <-app.Done():
			st, err := app.Wait()
			var ee *guest.ExitError
			if errors.As(err, &ee) {
				// The guest reported a status no program can have.
				res.End, res.Status = EndApp, ee.Status
				return res, fmt.Errorf("%s on %s: %w", r.pl.Command[0], r.pl.Guest.HostName, err)
			}
			if err != nil {
				if r.lostWithin(lostGrace) {
					res.End = EndGuestLost
					return res, &GuestLostError{Host: r.pl.Guest.HostName}
				}
				return res, fmt.Errorf("wait for %s: %w", r.pl.Command[0], err)
			}
			res.End, res.Status = EndApp, st
			r.phase(fmt.Sprintf("%s exited with status %d", r.pl.Command[0], st))
			return res, nil
		case <-r.srv.Done():
			res.End = EndXephyr
			r.phase("Xephyr exited")
			return res, nil
		case <-r.frameDone():
			res.End = EndXephyr
			r.phase(fmt.Sprintf("window frame gone: %v", r.frame.Err()))
			return res, nil
		case <-lost:
			res.End = EndGuestLost
			return res, &GuestLostError{Host: r.pl.Guest.HostName}
		case <-authDone:
			// The keeper's channel also ends when the connection drops.
			if r.lostWithin(lostGrace) {
				res.End = EndGuestLost
				return res, &GuestLostError{Host: r.pl.Guest.HostName}
			}
			res.End = EndAuthLost
			return res, &AuthLostError{Host: r.pl.Guest.HostName, Dir: r.auth.Dir, Err: r.auth.Err()}
		case <-ctx.Done():
			res.End = EndCanceled
			r.phase("interrupted")
			return res, nil
		case <-wmDone:
			st, err := wm.Wait()
			var ee *guest.ExitError
			if err != nil && !errors.As(err, &ee) && r.lostWithin(lostGrace) {
				res.End = EndGuestLost
				return res, &GuestLostError{Host: r.pl.Guest.HostName}
			}
			r.notice("the window manager exited (status %d); the session goes on until %s exits", st, r.pl.Command[0])
			wmDone = nil
		}
	}
}

// signalTeardown bounds the whole teardown after a signal (SIGINT, SIGTERM,
// xvmview stop): the session must end within 2 s of it whatever the guest
// and its X clients do. What is not undone by then (the guest's entry) is
// left in the state file for the next launch.
const signalTeardown = 1500 * time.Millisecond

// teardown undoes every step in reverse order, each with its own deadline;
// after a signal (ctx canceled) all of them share signalTeardown, and when
// it runs out the SSH connection is closed under whatever still waits on
// the guest, and what the steps could not finish is reported as notices,
// not errors. The session directory goes last, and only if nothing is left
// to clean up: otherwise its state file tells the next launch what remains.
func (r *runner) teardown(ctx context.Context) error {
	base := context.WithoutCancel(ctx)
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		base, cancel = context.WithTimeout(base, signalTeardown)
		defer cancel()
		stop := context.AfterFunc(base, func() {
			if r.client != nil {
				r.client.Close() // ends every wait on the guest: sessions, the forward's cancel
			}
		})
		defer stop()
	}
	signaled := ctx.Err() != nil
	var errs []error
	for i := len(r.stack) - 1; i >= 0; i-- {
		s := r.stack[i]
		sctx, cancel := context.WithTimeout(base, r.pl.Timeouts.Teardown+r.pl.Timeouts.Grace)
		if err := s.undo(sctx); err != nil {
			if signaled && base.Err() != nil {
				// Cut short by the signal's time, not failed: the user
				// asked to stop, and it stopped. The guest ends what is
				// still there when the connection closes (its watchdog,
				// its keeper); say what may be left, exit as signalled.
				r.notice("teardown: %s: %v (the teardown after the signal had %v)", s.name, err, signalTeardown)
			} else {
				errs = append(errs, fmt.Errorf("teardown: %s: %w", s.name, err))
			}
		}
		cancel()
	}
	if r.dir == nil {
		return errors.Join(errs...)
	}
	if err := r.dir.Remove(); err != nil {
		errs = append(errs, err)
	}
	r.phase("cleaned up")
	return errors.Join(errs...)
}

// headBuffer keeps the first headMax bytes written to it (a guest command's
// stderr, quoted in an error): the guest decides how much it writes.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const headMax = 4 << 10

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := min(len(p), headMax-h.buf.Len())
	h.buf.Write(p[:k])
	return len(p), nil
}

func (h *headBuffer) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
}

// line returns what was written as one line made visible, capped.
func (h *headBuffer) line() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return guesttext.Line(strings.TrimSpace(h.buf.String()))
}
