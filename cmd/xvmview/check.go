package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// checkTimeout bounds each check that talks to a program, a display or the
// guest.
const checkTimeout = 10 * time.Second

func (c *cli) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check PROFILE",
		Short: "Check everything a profile needs, one line per check",
		Long: `Check tests, in order, what 'xvmview run PROFILE' needs: Xephyr, the host display,
the profile itself and, for a guest, that it answers, that its host key is known, that
the login works, and that xauth and the profile's commands are installed there. For a
local profile it looks for the commands here. Each check prints one line; a failed one
is followed by an indented hint, and checks that depend on it are skipped.

On a terminal the lines start with ✓, ✗ or -; otherwise with ok, FAIL or skip, so
that 'xvmview check web | grep FAIL' finds the failures. The exit status is 1 when
any check failed, 0 otherwise.`,
		Example: `  xvmview check web
  xvmview check web | grep -A1 FAIL`,
		Args:              exactlyOne("check needs a profile name (see 'xvmview list')"),
		ValidArgsFunction: c.completeProfiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.check(cmd.Context(), args[0])
		},
	}
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

// outcome is one check's result.
type outcome int

const (
	passed outcome = iota
	failed
	skipped
)

// checkMarks are the line prefixes: symbols for people at a terminal, words
// for everything else (pipes, files, logs), where grep FAIL must work and
// a font may lack the symbols.
var checkMarks = map[bool][3]string{
	true:  {"✓", "✗", "-"},
	false: {"ok", "FAIL", "skip"},
}

// checker prints check lines and counts the outcomes.
type checker struct {
	w      io.Writer
	marks  [3]string
	counts [3]int
}

func newChecker(w io.Writer) *checker {
	return &checker{w: w, marks: checkMarks[isTerminal(w)]}
}

// isTerminal reports whether f (an io.Reader or io.Writer) is a character
// device: a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (k *checker) line(o outcome, name, detail, hint string) {
	k.counts[o]++
	fmt.Fprintf(k.w, "%-4s %s: %s\n", k.marks[o], name, detail)
	if hint != "" {
		fmt.Fprintf(k.w, "     hint: %s\n", hint)
	}
}

func (k *checker) pass(name, detail string)       { k.line(passed, name, detail, "") }
func (k *checker) fail(name, detail, hint string) { k.line(failed, name, detail, hint) }
func (k *checker) skip(name, because string)      { k.line(skipped, name, because, "") }

// failErr reports a failed check from err, with its hint.
func (k *checker) failErr(name string, err error) { k.fail(name, err.Error(), hintFor(err)) }

// checksFailedError ends a check run with failures (exit 1).
type checksFailedError struct{ failed, total int }

func (e checksFailedError) Error() string {
	return fmt.Sprintf("%d of %d checks failed", e.failed, e.total)
}

func (k *checker) result() error {
	total := k.counts[passed] + k.counts[failed] + k.counts[skipped]
	if k.counts[failed] > 0 {
		return checksFailedError{k.counts[failed], total}
	}
	if k.counts[skipped] > 0 {
		fmt.Fprintf(k.w, "%d checks passed, %d skipped\n", k.counts[passed], k.counts[skipped])
		return nil
	}
	fmt.Fprintf(k.w, "all %d checks passed\n", total)
	return nil
}

func (c *cli) check(ctx context.Context, name string) error {
	if err := profile.ValidName(name); err != nil {
		return usageError{err}
	}
	k := newChecker(c.stdout)
	k.xephyr(ctx)
	k.hostDisplay(ctx)

	p, err := profile.Load(name, profile.DefaultDirs())
	if err != nil {
		k.failErr("profile", err)
		k.skip("guest and commands", "the profile did not load")
		return k.result()
	}
	if p.Local() {
		k.pass("profile", fmt.Sprintf("%s (%s): runs on this machine", p.Name, p.Source))
		k.localProgram("command", p.Command)
		if len(p.WindowManager) > 0 {
			k.localProgram("window manager", p.WindowManager)
		}
		return k.result()
	}
	k.pass("profile", fmt.Sprintf("%s (%s): guest %s, transport %s", p.Name, p.Source, p.Host, p.Transport))
	k.guest(ctx, p)
	return k.result()
}

var xorgVersion = regexp.MustCompile(`X\.Org X Server (\d+(?:\.\d+)+)`)

func (k *checker) xephyr(ctx context.Context) {
	const name = "Xephyr"
	path, err := exec.LookPath("Xephyr")
	if err != nil {
		k.fail(name, "not found in PATH", "install it: sudo apt-get install --no-install-recommends xserver-xephyr")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// Xephyr (a kdrive server) has no -version: -help proves that it starts
	// (its libraries load) and prints its usage, then exits 1.
	out, err := exec.CommandContext(ctx, path, "-help").CombinedOutput()
	var ee *exec.ExitError
	if (err != nil && !errors.As(err, &ee)) || !strings.Contains(string(out), "Xephyr Option Usage") {
		k.fail(name, fmt.Sprintf("%s does not start: %s", path, cmp.Or(firstLine(out), fmt.Sprint(err))),
			"reinstall it: sudo apt-get install --reinstall xserver-xephyr")
		return
	}
	k.pass(name, fmt.Sprintf("%s (%s)", path, xephyrVersion(ctx, out)))
}

// xephyrVersion is the X server version in out when a build prints it, else
// the Debian package's version, else "version unknown".
func xephyrVersion(ctx context.Context, out []byte) string {
	if m := xorgVersion.FindSubmatch(out); m != nil {
		return "X.Org X Server " + string(m[1])
	}
	if v, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", "xserver-xephyr").Output(); err == nil && len(v) > 0 {
		return "xserver-xephyr " + firstLine(v)
	}
	return "version unknown"
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func (k *checker) hostDisplay(ctx context.Context) {
	const name = "host display"
	d := os.Getenv("DISPLAY")
	if d == "" {
		k.failErr(name, noDisplayError{})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	f, err := xephyr.QueryHost(ctx, d, hostXauthority())
	if err != nil {
		k.fail(name, err.Error(), hostDisplayHint(d))
		return
	}
	k.pass(name, fmt.Sprintf("DISPLAY=%s, %dx%d", d, f.Width, f.Height))
}

// localProgram checks that argv[0] of a local profile's command runs here.
func (k *checker) localProgram(what string, argv []string) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		k.fail(what, fmt.Sprintf("%s not found in PATH", argv[0]), fmt.Sprintf("install %s, or give its full path in the profile", argv[0]))
		return
	}
	k.pass(what, path)
}

// guest checks a remote profile's guest: each step needs the one before.
func (k *checker) guest(ctx context.Context, p profile.Profile) {
	later := []string{"host key", "login", "xauth on guest", "command on guest"}
	if len(p.WindowManager) > 0 {
		later = append(later, "window manager on guest")
	}
	if p.Transport == profile.TransportSSH {
		later = append(later, "port forwarding")
	}
	skipRest := func(from int, because string) {
		for _, n := range later[from:] {
			k.skip(n, because)
		}
	}

	t, err := guest.Resolve(p.Host, guest.Overrides{User: p.User, Port: p.Port, IdentityFile: p.IdentityFile}, guest.Config{})
	if err != nil {
		k.fail("guest reachable", fmt.Sprintf("profile %s: %v", p.Name, err), "fix the guest's entry in ~/.ssh/config or the profile")
		skipRest(0, "the guest's address is unknown")
		return
	}

	fctx, cancel := context.WithTimeout(ctx, checkTimeout)
	key, err := guest.FetchHostKey(fctx, t)
	cancel()
	if err != nil {
		k.failErr("guest reachable", err)
		skipRest(0, "the guest did not answer")
		return
	}
	k.pass("guest reachable", fmt.Sprintf("%s at %s: sshd answers", t.Alias, t.Addr()))

	if err := guest.CheckHostKey(t, key); err != nil {
		var hk *guest.HostKeyError
		switch {
		case errors.As(err, &hk) && hk.Changed:
			k.fail("host key", fmt.Sprintf("CHANGED: %s presents %s %s, but %s line %d holds a different key", t.Addr(), hk.KeyType, hk.Fingerprint, hk.KnownHosts, hk.Line),
				fmt.Sprintf("this may be an attack; if the guest was reinstalled, check the new fingerprint on its console, remove the old key with `ssh-keygen -R %s -f %s`, then run `xvmview trust %s`", guest.KnownHostsName(t), hk.KnownHosts, p.Name))
		case errors.As(err, &hk):
			k.fail("host key", fmt.Sprintf("unknown: %s %s is not in %s", hk.KeyType, hk.Fingerprint, strings.Join(t.KnownHostsFiles, ", ")),
				fmt.Sprintf("compare the fingerprint with the guest's own (on its console: %s), then accept it with `xvmview trust %s`", fingerprintCommand(hk.KeyType), p.Name))
		default:
			k.failErr("host key", err)
		}
		skipRest(1, "the host key is not trusted")
		return
	}
	k.pass("host key", fmt.Sprintf("%s %s is known", key.Type(), ssh.FingerprintSHA256(key)))

	dctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	c, err := guest.Dial(dctx, t, guest.DialOptions{KeepAlive: -1})
	if err != nil {
		k.failErr("login", err)
		skipRest(2, "the login failed")
		return
	}
	defer c.Close()
	k.pass("login", "as "+t.User)

	k.remoteProgram(dctx, c, "xauth on guest", "xauth", (&session.NoXauthError{}).Hint())
	k.remoteProgram(dctx, c, "command on guest", p.Command[0],
		fmt.Sprintf("install %s on the guest, or give its full path in the profile's command", p.Command[0]))
	if len(p.WindowManager) > 0 {
		k.remoteProgram(dctx, c, "window manager on guest", p.WindowManager[0],
			fmt.Sprintf("install %s on the guest, or give its full path in the profile's window_manager", p.WindowManager[0]))
	}
	if p.Transport == profile.TransportSSH {
		// The ssh transport carries X in a remote forward on the guest.
		if err := c.CheckForwarding(dctx); err != nil {
			k.failErr("port forwarding", err)
		} else {
			k.pass("port forwarding", "the guest's sshd allows remote forwarding (transport ssh)")
		}
	}
}

// remoteProgram checks with `command -v` that prog runs on the guest, in the
// PATH the guest's sshd gives commands (the one xvmview run uses).
func (k *checker) remoteProgram(ctx context.Context, c *guest.Client, name, prog, hint string) {
	cmd, err := guest.Command(nil, []string{"command", "-v", prog})
	if err != nil {
		k.failErr(name, err)
		return
	}
	var out strings.Builder
	err = c.Run(ctx, cmd, nil, &out, io.Discard)
	var ee *guest.ExitError
	switch {
	case errors.As(err, &ee):
		k.fail(name, fmt.Sprintf("%s not found in the guest's PATH", prog), hint)
	case err != nil:
		k.failErr(name, err)
	default:
		k.pass(name, strings.TrimSpace(out.String()))
	}
}

// fingerprintCommand is what prints the guest's own fingerprint of a host
// key of type keyType, on its console.
func fingerprintCommand(keyType string) string {
	file := "ed25519"
	switch {
	case strings.HasPrefix(keyType, "ecdsa-"):
		file = "ecdsa"
	case strings.Contains(keyType, "rsa"):
		file = "rsa"
	}
	return "ssh-keygen -lf /etc/ssh/ssh_host_" + file + "_key.pub"
}
