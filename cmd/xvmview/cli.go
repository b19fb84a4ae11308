package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/adrg/xdg"
	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// Exit codes. A session that ran passes the app's own status through.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// signalError is the cause main gives the root context when a signal
// arrives, so the exit status can say which (128+N, as shells do).
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "received " + e.sig.String() }

// usageError marks errors in how xvmview was called (exit 2).
type usageError struct{ error }

// hinter is implemented by errors that know what the user should do.
type hinter interface{ Hint() string }

// cli holds one invocation's I/O; nothing here is global.
type cli struct {
	stdout, stderr io.Writer
	status         int // set by subcommands that pass a status through
}

func (c *cli) errorf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "xvmview: error: "+format+"\n", args...)
}

func (c *cli) hintf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "xvmview: hint: "+format+"\n", args...)
}

func (c *cli) noticef(format string, args ...any) {
	fmt.Fprintf(c.stderr, "xvmview: "+format+"\n", args...)
}

// run is the whole program but for signals and the final exit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	xdg.Reload() // read XDG_* from the environment as it is now
	c := &cli{stdout: stdout, stderr: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return c.status
	}
	return c.report(err)
}

// report prints err in the one voice and returns the exit status.
func (c *cli) report(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		c.errorf("%v", ue.error)
		c.hintf("see 'xvmview --help'")
		return exitUsage
	}
	c.errorf("%v", err)
	if hint := hintFor(err); hint != "" {
		c.hintf("%s", hint)
	}
	return exitFailure
}

// hintFor says what the user can do about err, or "".
func hintFor(err error) string {
	var (
		h   hinter
		nf  *xephyr.NotFoundError
		xe  *xephyr.ExitError
		un  *guest.UnreachableError
		hk  *guest.HostKeyError
		au  *guest.AuthError
		pe  *profile.Error
		gl  *session.GuestLostError
		ope *session.OpenDisplayError
		fr  *guest.ForwardingRefusedError
	)
	switch {
	case errors.As(err, &h):
		return h.Hint()
	case errors.As(err, &nf):
		return fmt.Sprintf("install it: sudo apt-get install --no-install-recommends %s", nf.Package)
	case errors.As(err, &xe) && xe.Display < 0:
		return hostDisplayHint(os.Getenv("DISPLAY"))
	case errors.As(err, &un):
		return fmt.Sprintf("is the guest running, and does its sshd listen on %s? Check the profile's host and port, and HostName/Port in ~/.ssh/config", un.Addr)
	case errors.As(err, &hk) && hk.Changed:
		return "do not continue until you know why the key changed"
	case errors.As(err, &hk):
		return "compare the fingerprint with the guest's own, shown on its console by ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
	case errors.As(err, &au):
		return fmt.Sprintf("check the user and keys with: ssh -v %s", au.Addr)
	case errors.As(err, &pe):
		return "fix the profile, then check it with 'xvmview list' or 'xvmview run NAME --dry-run'"
	case errors.As(err, &gl):
		return "the guest's processes end by themselves when the connection drops; run the profile again when the guest is back"
	case errors.As(err, &fr):
		return `or, on a host-only network you trust, set transport = "tcp" in the profile (X then crosses it in clear)`
	case errors.As(err, &ope):
		return "this Xephyr does not enforce its -auth file: report it with 'Xephyr -version' output"
	}
	return ""
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "xvmview",
		Short: "Run a guest's apps in an isolated nested X display",
		Long: `xvmview runs an app from a guest (a VM you reach over SSH, or this machine) in a
Xephyr window of its own. The app sees only that nested display: not your screen,
keyboard or clipboard. Each launch gets a fresh cookie that never appears in any
command line, and everything is removed when the app exits.`,
		Example: `  xvmview list                      # the profiles you can run
  xvmview run demo                  # the built-in local demo
  xvmview run web -- https://example.org   # extra arguments go to the app
  xvmview run web --dry-run         # show what would run, cookie redacted`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(c.runCommand(), c.listCommand(), c.versionCommand())
	root.AddCommand(c.checkCommand(), c.trustCommand(), c.psCommand(), c.stopCommand())
	root.AddCommand(c.desktopCommand(), c.manCommand())
	return root
}

func (c *cli) runCommand() *cobra.Command {
	var dryRun, verbose bool
	var screenshot string
	cmd := &cobra.Command{
		Use:   "run PROFILE [-- ARGS...]",
		Short: "Open a profile's app in a new nested display",
		Long: `Run starts Xephyr with a fresh cookie, logs into the profile's guest over SSH
(host keys checked against known_hosts), hands the guest the cookie on stdin, runs the
window manager and the app there, and tears everything down when the app exits, the
window is closed, the connection drops or xvmview gets SIGINT, SIGTERM or SIGHUP.
The exit status is the app's.`,
		Example: `  xvmview run demo
  xvmview run firefox-domu -- --private-window
  xvmview run demo --screenshot /tmp/demo.png --verbose`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageError{errors.New("run needs a profile name (see 'xvmview list')")}
			}
			if dash := cmd.ArgsLenAtDash(); dash > 1 || (dash < 0 && len(args) > 1) {
				return usageError{fmt.Errorf("unexpected argument %q: put the app's arguments after --", args[1])}
			}
			return nil
		},
		ValidArgsFunction: c.completeProfiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runProfile(cmd.Context(), args[0], args[1:], dryRun, verbose, screenshot)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&dryRun, "dry-run", "n", false, "print the Xephyr command line and the guest commands, then stop")
	f.BoolVarP(&verbose, "verbose", "v", false, "report each phase with its time since start")
	f.StringVar(&screenshot, "screenshot", "", "save a PNG of the nested display once the app's first window shows")
	return cmd
}

func (c *cli) runProfile(ctx context.Context, name string, extra []string, dryRun, verbose bool, screenshot string) error {
	if err := profile.ValidName(name); err != nil {
		return usageError{err}
	}
	p, err := profile.Load(name, profile.DefaultDirs())
	if err != nil {
		return err
	}
	facts := session.Facts{RuntimeRoot: session.RuntimeRoot(xdg.RuntimeDir)}
	facts.Hostname, _ = os.Hostname()
	if !p.Local() {
		t, err := guest.Resolve(p.Host, guest.Overrides{User: p.User, Port: p.Port, IdentityFile: p.IdentityFile}, guest.Config{})
		if err != nil {
			return fmt.Errorf("profile %s: %w", p.Name, err)
		}
		facts.Guest = &t
	}
	if d := os.Getenv("DISPLAY"); d != "" {
		facts.HostEnv = append(os.Environ()[:0:0], os.Environ()...)
		var release func()
		facts.Host, release = c.queryHost(ctx, d)
		defer release()
	} else if !dryRun {
		return noDisplayError{}
	}
	pl, err := session.NewPlan(p, extra, facts)
	if err != nil {
		return err
	}
	if dryRun {
		return pl.Describe(c.stdout)
	}
	for _, w := range pl.Fidelity.Warnings {
		c.noticef("%s", w)
	}
	opts, log := c.sessionOptions(p.Name, verbose, screenshot)
	if log != nil {
		defer log.Close()
	}
	res, err := session.Run(ctx, pl, opts)
	if log != nil {
		if err != nil {
			log.printf("ended with an error: %v", err)
		} else {
			log.printf("ended: %s (status %d)", res.End, res.Status)
		}
	}
	if err != nil {
		return err
	}
	switch res.End {
	case session.EndApp:
		c.status = res.Status
	case session.EndCanceled:
		c.status = exitFailure
		var se signalError
		if errors.As(context.Cause(ctx), &se) {
			if s, ok := se.sig.(syscall.Signal); ok {
				c.status = 128 + int(s)
			}
		}
	case session.EndXephyr:
		c.noticef("%s; session ended", res.End)
	}
	return nil
}

// sessionOptions wires a launch's output: the app's output to ours, phases
// and notices to the session log (and to stderr with --verbose). A log that
// cannot be created costs a notice, not the launch.
func (c *cli) sessionOptions(profile string, verbose bool, screenshot string) (session.Options, *sessionLog) {
	stdout, stderr := &keepGoing{w: c.stdout}, &keepGoing{w: c.stderr}
	opts := session.Options{Stdout: stdout, Stderr: stderr, Screenshot: screenshot}
	log, err := openSessionLog(logDir(xdg.StateHome), profile)
	if err != nil {
		c.noticef("no session log: %v", err)
	}
	opts.Notice = func(msg string) {
		c.noticef("%s", msg)
		if log != nil {
			log.printf("notice: %s", msg)
		}
	}
	if log != nil || verbose {
		opts.Progress = func(phase string, at time.Duration) {
			if verbose {
				fmt.Fprintf(c.stderr, "xvmview: %7.3fs %s\n", at.Seconds(), phase)
			}
			if log != nil {
				log.printf("%s", phase)
			}
		}
	}
	if log != nil {
		opts.Stderr = io.MultiWriter(stderr, log)
		opts.XephyrStderr = log
		if verbose {
			opts.XephyrStderr = io.MultiWriter(stderr, log)
		}
	} else if verbose {
		opts.XephyrStderr = stderr
	}
	return opts, log
}

// keepGoing passes writes on until the first error (a closed pipe, as in
// `xvmview run web | head`), then drops them: the session's window matters
// more than its output, and a writer that fails would stall the guest's
// program once the SSH channel's window fills.
type keepGoing struct {
	mu     sync.Mutex
	w      io.Writer
	failed bool
}

func (k *keepGoing) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.failed {
		if _, err := k.w.Write(p); err != nil {
			k.failed = true
		}
	}
	return len(p), nil
}

// noDisplayError: Xephyr needs a host display to draw its window in.
type noDisplayError struct{}

func (noDisplayError) Error() string { return "no host display: DISPLAY is not set" }
func (noDisplayError) Hint() string {
	return "run xvmview from your desktop session, or try 'make demo', which starts a private Xvfb"
}

func (c *cli) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the profiles you can run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := profile.List(profile.DefaultDirs())
			if err != nil {
				return err
			}
			w := 4
			for _, e := range entries {
				w = max(w, len(e.Name))
			}
			for _, e := range entries {
				desc := e.Description
				if e.Err != nil {
					desc = "BROKEN: " + e.Err.Error()
				}
				fmt.Fprintf(c.stdout, "%-*s  %s\n", w, e.Name, strings.TrimSpace(desc))
			}
			return nil
		},
	}
}

// versionString is the build's version: -ldflags -X main.version, else the
// module version, else "(devel)".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func (c *cli) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print xvmview's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(c.stdout, "xvmview %s\n", versionString())
			return nil
		},
	}
}
