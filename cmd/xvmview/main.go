// Command xvmview opens a guest's apps in a nested X display (Xephyr) of
// their own, so they never see the host's screen, keyboard or clipboard.
//
// It parses, prints and exits: the work is in internal/session (launches,
// checks, host keys), internal/profile and internal/desktop.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/session"
)

func main() {
	// One P and GOGC=400: the X forward's measured best (bench/x11perf).
	session.TuneProcess()
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// A closed stdout/stderr pipe (xvmview run web | head) must not kill the
	// launcher before its teardown: with SIGPIPE notified, writes fail with
	// EPIPE instead. (Not signal.Ignore: children would inherit SIG_IGN.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	go func() { cancel(signalError{<-sigs}) }()
	code := run(ctx, os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Environ: os.Environ})
	os.Exit(code)
}

// Env is one invocation's world: its standard streams and environment.
// main passes the process's own; tests pass theirs.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(key string) string
	Environ        func() []string
}

// Exit codes. A session that ran passes the app's own status through.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// signalError is the cause main gives the root context when a signal
// arrives, so the exit status can say which (128+N, as shells do).
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "received " + e.sig.String() }

// usageError marks errors in how xvmview was called (exit 2).
type usageError struct{ error }

// cli holds one invocation's I/O; nothing here is global.
type cli struct {
	env            Env
	dirs           baseDirs // XDG base directories, from env
	stdout, stderr io.Writer
	status         int         // set by subcommands that pass a status through
	profile        string      // the profile the command is about, for hints; "" for none
	desk           *desktopOut // a launch without a terminal: notifications too; nil otherwise
}

// maxMessage caps one error, hint or notice line (some name keys, files
// and commands to run: they are long, but not this long).
const maxMessage = 4096

// errorf, hintf and noticef are the one way xvmview speaks on stderr. Their
// text may quote the guest (an error from its xauth, a signal name): it goes
// through guesttext, so each is one line with no terminal escapes, at most
// maxMessage bytes.
func (c *cli) errorf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "xvmview: error: %s\n", guesttext.LineCap(fmt.Sprintf(format, args...), maxMessage))
}

func (c *cli) hintf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "xvmview: hint: %s\n", guesttext.LineCap(fmt.Sprintf(format, args...), maxMessage))
}

func (c *cli) noticef(format string, args ...any) {
	msg := guesttext.LineCap(fmt.Sprintf(format, args...), maxMessage)
	fmt.Fprintf(c.stderr, "xvmview: %s\n", msg)
	if c.desk != nil {
		c.desk.notice(msg)
	}
}

// run is the whole program but for signals and the final exit.
func run(ctx context.Context, args []string, env Env) int {
	c := newCLI(env)
	env = c.env
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if c.desk != nil {
		defer c.desk.close()
	}
	if err == nil {
		return c.status
	}
	return c.report(err)
}

// newCLI is one invocation in env: everything it reads from the
// environment (XDG directories, HOME, DISPLAY, SSH_ASKPASS...) comes from
// env, never from the process's. A nil Getenv or Environ is an empty
// environment.
func newCLI(env Env) *cli {
	if env.Stdin == nil {
		env.Stdin = eofReader{}
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Environ == nil {
		env.Environ = func() []string { return nil }
	}
	return &cli{env: env, dirs: xdgDirs(env.Getenv), stdout: env.Stdout, stderr: env.Stderr}
}

// eofReader is the stdin of a caller that gave none.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

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
	root.AddCommand(c.desktopCommand(), c.manCommand(), c.clipCommand())
	root.AddCommand(c.vmCommand())
	return root
}

// aboutProfile checks a profile name given on the command line (a usage
// error when it cannot be one) and makes it the profile hints name.
func (c *cli) aboutProfile(name string) error {
	if err := profile.ValidName(name); err != nil {
		return usageError{err}
	}
	c.profile = name
	return nil
}

// loadProfile is aboutProfile, then the profile's loading.
func (c *cli) loadProfile(name string) (profile.Profile, error) {
	if err := c.aboutProfile(name); err != nil {
		return profile.Profile{}, err
	}
	return profile.Load(name, c.profileDirs())
}

// profileDirs are where this invocation finds profiles.
func (c *cli) profileDirs() profile.Dirs { return profile.DefaultDirs(c.dirs.ConfigHome) }

// runtimeRoot is where this invocation's sessions keep their directories.
func (c *cli) runtimeRoot() string {
	tmp := c.env.Getenv("TMPDIR") // as os.TempDir reads it
	if tmp == "" {
		tmp = "/tmp"
	}
	return session.RuntimeRootIn(c.dirs.RuntimeDir, tmp)
}

// sshConfig says where this invocation's SSH files and agent are: under
// its HOME, its SSH_AUTH_SOCK; `ssh -G` runs in its environment.
func (c *cli) sshConfig() session.SSHConfig {
	return session.SSHConfig{Home: c.env.Getenv("HOME"), Getenv: c.env.Getenv, Environ: c.env.Environ}
}

// asker asks this invocation's user for key passphrases: on its terminal,
// or through its SSH_ASKPASS, which runs in its environment.
func (c *cli) asker() *desktop.Asker {
	return &desktop.Asker{StdinTerminal: desktop.Terminal(c.env.Stdin), Getenv: c.env.Getenv, Environ: c.env.Environ}
}

// exactlyOne accepts one argument, else returns a usage error saying msg.
func exactlyOne(msg string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usageError{errors.New(msg)}
		case len(args) > 1:
			return usageError{fmt.Errorf("unexpected argument %q", args[1])}
		}
		return nil
	}
}
