package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/session"
)

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
	if !dryRun {
		// From a desktop menu, failures must reach the user.
		c.desk = c.desktopNotifications(name)
	}
	p, err := c.loadProfile(name)
	if err != nil {
		return err
	}
	facts := session.Facts{RuntimeRoot: c.runtimeRoot()}
	facts.Hostname, _ = os.Hostname()
	if !p.Local() {
		t, err := session.ResolveGuest(p, c.sshConfig())
		if err != nil {
			return err
		}
		facts.Guest = &t
	}
	host := session.HostDisplayFrom(c.env.Getenv)
	if host.Display != "" {
		facts.HostEnv = c.env.Environ()
		facts.Memory = session.ProbeMemory(facts.HostEnv)
		// A host display that does not answer its query only costs the
		// defaults; Xephyr's own error says more if it cannot open it.
		h, release, err := host.Open(ctx)
		if err != nil {
			c.noticef("cannot read the host display's size and keyboard, using defaults: %v", err)
		} else {
			facts.Host = h
			defer release()
		}
	} else if !dryRun {
		return session.NoDisplayError{}
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
	opts.Ask = c.asker()
	opts.CannotAsk = desktop.ErrCannotAsk
	if d := c.desk; d != nil {
		guestName := ""
		if pl.Guest != nil {
			guestName = pl.Guest.Alias
		}
		d.startTimer(waitingFor("runtime directory", guestName))
		defer d.running()
		progress := opts.Progress
		opts.Progress = func(phase string, at time.Duration) {
			if progress != nil {
				progress(phase, at)
			}
			if w := waitingFor(phase, guestName); w == "" {
				d.running()
			} else {
				d.wait(w)
			}
		}
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
		var ok bool
		if c.status, ok = guesttext.Status(res.Status); !ok {
			c.noticef("the app's exit status %d is not one a program can have; exiting with %d", res.Status, c.status)
		}
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
	log, err := openSessionLog(logDir(c.dirs.StateHome), profile)
	if err != nil {
		c.noticef("no session log: %v", err)
	}
	opts.Notice = func(msg string) {
		c.noticef("%s", msg)
		if log != nil {
			log.printf("notice: %s", msg)
		}
	}
	if log != nil {
		opts.Log = func(msg string) { log.printf("%s", msg) }
	}
	if log != nil || verbose {
		opts.Progress = func(phase string, at time.Duration) {
			if verbose {
				fmt.Fprintf(c.stderr, "xvmview: %7.3fs %s\n", at.Seconds(), guesttext.LineCap(phase, maxMessage))
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
