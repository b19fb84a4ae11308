package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/vm"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// CheckTimeout bounds each check that talks to a program, a display or the
// guest.
const CheckTimeout = 10 * time.Second

// Status is a check's outcome.
type Status int

// The outcomes of a check.
const (
	StatusOK   Status = iota // it found what the launch needs
	StatusFail               // it did not: Err says why
	StatusSkip               // a check it needs did not pass
)

// CheckResult is one check's outcome.
type CheckResult struct {
	Name   string // what was checked, e.g. "host key"
	Status Status
	// Facts: what was found (StatusOK), what is wrong when the check has
	// more to say than Err ("" otherwise), or why it was skipped.
	Facts string
	// Details are more lines of facts, shown under the result: the ssh
	// settings in effect, each identity file.
	Details []string
	Err     error // StatusFail: the error, typed where the user can act on it
}

// CheckEnv is what Check needs from the caller.
type CheckEnv struct {
	Dirs     profile.Dirs      // where profiles are (profile.DefaultDirs())
	Host     HostDisplay       // the display Xephyr would draw on
	SSH      guest.Config      // where the SSH files are; zero = the usual places
	Progress func(CheckResult) // called with each result as it is known; may be nil
	// RuntimeRoot is where the session directories are (RuntimeRoot): a
	// stale session whose cleanup failed MaxCleanupTries times there is
	// reported first, one "stale session" result each. "": not looked at.
	RuntimeRoot string
	// Ask asks for key passphrases at login (as for Run); nil: never.
	// CannotAsk is its "cannot ask" error.
	Ask       Asker
	CannotAsk error
}

// ProgramNotFoundError means a program a profile runs is not in the PATH
// where it would run: here (Host "") or on the guest.
type ProgramNotFoundError struct {
	Program string
	Key     string // the profile key that names it: "command" or "window_manager"
	Host    string // the guest; "" for this machine
}

func (e *ProgramNotFoundError) Error() string {
	if e.Host == "" {
		return e.Program + " not found in PATH"
	}
	return fmt.Sprintf("%s not found in the guest's PATH on %s", e.Program, e.Host)
}

// check is one line of `xvmview check`. Adding a check is adding one to
// checks: a name, when it applies, which check it needs, and a function
// that returns what it found or an error.
type check struct {
	name string
	// applies reports whether the check is made for p; nil: always. Checks
	// before "profile" run before the profile is loaded and must leave it nil.
	applies func(p profile.Profile) bool
	needs   string // a check that must pass first; "" for none
	// unmet is what the checks that need this one say when it failed.
	unmet string
	run   func(ctx context.Context, c *checking) (facts string, err error)
	// asks: the check may wait for the user's answer (AskTimeout more).
	asks bool
}

// checking is one Check's state, filled in as the checks pass.
type checking struct {
	env     CheckEnv
	name    string
	p       profile.Profile
	target  guest.Target
	key     ssh.PublicKey
	client  *guest.Client
	details []string // the running check's Details
	vm      *vm.Conn // the libvirt connection of a profile with a VM
	vmDown  string   // why the guest cannot answer now: its VM is not running
}

func local(p profile.Profile) bool  { return p.Local() }
func remote(p profile.Profile) bool { return !p.Local() }

// checks are what `xvmview run` needs, in order.
var checks = []check{
	{name: "Xephyr", run: checkXephyr},
	{name: "host display", run: checkHostDisplay},
	{name: "profile", run: checkProfile, unmet: "the profile did not load"},
	{name: "command", applies: local, needs: "profile", run: func(_ context.Context, c *checking) (string, error) {
		return localProgram(c.p.Command, "command")
	}},
	{name: "window manager", applies: func(p profile.Profile) bool { return p.Local() && len(p.WindowManager) > 0 }, needs: "profile",
		run: func(_ context.Context, c *checking) (string, error) {
			return localProgram(c.p.WindowManager, "window_manager")
		}},
	{name: "ssh settings", applies: remote, needs: "profile", run: checkSSHSettings, unmet: "the guest's address is unknown"},
	{name: "keys", applies: remote, needs: "ssh settings", run: checkKeys},
	{name: "libvirt", applies: hasVM, needs: "profile", run: checkLibvirt, unmet: "libvirt did not answer"},
	{name: "VM", applies: hasVM, needs: "libvirt", run: checkVMDomain, unmet: "the VM's domain is not there"},
	{name: "guest reachable", applies: remote, needs: "ssh settings", run: checkReachable, unmet: "the guest did not answer", asks: true},
	{name: "host key", applies: remote, needs: "guest reachable", run: checkHostKey, unmet: "the host key is not trusted"},
	{name: "login", applies: remote, needs: "host key", run: checkLogin, unmet: "the login failed", asks: true},
	{name: "login shell", applies: remote, needs: "login", run: checkLoginShell},
	{name: "xauth on guest", applies: remote, needs: "login", run: func(ctx context.Context, c *checking) (string, error) {
		return c.remoteProgram(ctx, "xauth", "")
	}},
	{name: "command on guest", applies: remote, needs: "login", run: func(ctx context.Context, c *checking) (string, error) {
		return c.remoteProgram(ctx, c.p.Command[0], "command")
	}},
	{name: "window manager on guest", applies: func(p profile.Profile) bool { return !p.Local() && len(p.WindowManager) > 0 }, needs: "login",
		run: func(ctx context.Context, c *checking) (string, error) {
			return c.remoteProgram(ctx, c.p.WindowManager[0], "window_manager")
		}},
	{name: "port forwarding", applies: func(p profile.Profile) bool { return !p.Local() && p.Transport == profile.TransportSSH }, needs: "login",
		run: func(ctx context.Context, c *checking) (string, error) {
			// The ssh transport carries X in a remote forward on the guest.
			if err := c.client.CheckForwarding(ctx); err != nil {
				return "", err
			}
			return "the guest's sshd allows remote forwarding (transport ssh)", nil
		}},
}

// Check makes every check that `xvmview run NAME` needs, in order, each
// bounded by CheckTimeout, and returns one result per check. A check whose
// needed check did not pass is skipped; when the profile does not load, one
// skipped result named "guest and commands" stands for the rest. Results
// are also handed to env.Progress as they are known. Stale sessions whose
// cleanup failed for good come first, only when there are any.
func Check(ctx context.Context, name string, env CheckEnv) []CheckResult {
	c := &checking{env: env, name: name}
	defer func() {
		if c.client != nil {
			c.client.Close()
		}
		if c.vm != nil {
			c.vm.Close()
		}
	}()
	var out []CheckResult
	add := func(r CheckResult) {
		out = append(out, r)
		if env.Progress != nil {
			env.Progress(r)
		}
	}
	if env.RuntimeRoot != "" {
		failed, err := FailedCleanups(env.RuntimeRoot)
		if err != nil {
			add(CheckResult{Name: "stale sessions", Status: StatusFail, Err: err})
		}
		for _, s := range failed {
			add(CheckResult{Name: "stale session", Status: StatusFail, Err: &FailedCleanupError{Session: s}})
		}
	}
	unmet := map[string]string{} // check name -> why the checks needing it are skipped
	loaded := false
	for _, k := range checks {
		if k.applies != nil {
			if !loaded {
				if why, failed := unmet["profile"]; failed {
					add(CheckResult{Name: "guest and commands", Status: StatusSkip, Facts: why})
					return out
				}
				loaded = true
			}
			if !k.applies(c.p) {
				continue
			}
		}
		if why, failed := unmet[k.needs]; k.needs != "" && failed {
			unmet[k.name] = why
			add(CheckResult{Name: k.name, Status: StatusSkip, Facts: why})
			continue
		}
		timeout := CheckTimeout
		if k.asks && env.Ask != nil {
			timeout += AskTimeout
		}
		kctx, cancel := context.WithTimeout(ctx, timeout)
		c.details = nil
		facts, err := k.run(kctx, c)
		cancel()
		var sn *skipNow
		if errors.As(err, &sn) {
			unmet[k.name] = sn.because
			add(CheckResult{Name: k.name, Status: StatusSkip, Facts: sn.because})
			continue
		}
		if err == nil {
			add(CheckResult{Name: k.name, Status: StatusOK, Facts: facts, Details: c.details})
			continue
		}
		unmet[k.name] = k.unmet
		add(CheckResult{Name: k.name, Status: StatusFail, Facts: facts, Details: c.details, Err: err})
	}
	return out
}

func checkXephyr(ctx context.Context, _ *checking) (string, error) {
	path, version, err := xephyr.Probe(ctx, "")
	var nf *xephyr.NotFoundError
	if errors.As(err, &nf) {
		return "not found in PATH", err
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (%s)", path, version), nil
}

func checkHostDisplay(ctx context.Context, c *checking) (string, error) {
	facts, release, err := c.env.Host.Open(ctx)
	if err != nil {
		return "", err
	}
	release()
	return fmt.Sprintf("DISPLAY=%s, %dx%d", c.env.Host.Display, facts.Width, facts.Height), nil
}

func checkProfile(_ context.Context, c *checking) (string, error) {
	p, err := profile.Load(c.name, c.env.Dirs)
	if err != nil {
		return "", err
	}
	c.p = p
	if p.Local() {
		return fmt.Sprintf("%s (%s): runs on this machine", p.Name, p.Source), nil
	}
	return fmt.Sprintf("%s (%s): guest %s, transport %s", p.Name, p.Source, p.Host, p.Transport), nil
}

// localProgram checks that argv[0] of a local profile's command runs here.
func localProgram(argv []string, key string) (string, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return "", &ProgramNotFoundError{Program: argv[0], Key: key}
	}
	return path, nil
}

// checkSSHSettings resolves the guest as ssh would and lists the settings
// in effect, with the file and line each came from where known, and each
// jump host.
func checkSSHSettings(_ context.Context, c *checking) (string, error) {
	t, err := ResolveGuest(c.p, c.env.SSH)
	if err != nil {
		return "", err
	}
	c.target = t
	for _, st := range t.Settings {
		line := st.Key + " " + st.Value
		if st.Source != "" {
			line += "  (" + st.Source + ")"
		}
		c.details = append(c.details, guesttext.Line(line))
	}
	for i, j := range t.Jumps {
		hop := fmt.Sprintf("jump host %d of %d: %s = %s@%s", i+1, len(t.Jumps), j.Alias, j.User, j.Addr())
		if j.ProxyCommand != "" {
			hop += " via ProxyCommand " + j.ProxyCommand
		}
		c.details = append(c.details, guesttext.Line(hop))
	}
	facts := fmt.Sprintf("%s = %s@%s", t.Alias, t.User, t.Addr())
	switch {
	case len(t.Jumps) > 0:
		facts += fmt.Sprintf(" through %d jump host(s)", len(t.Jumps))
	case t.ProxyCommand != "":
		facts += " via ProxyCommand " + t.ProxyCommand
	}
	return guesttext.Line(facts), nil
}

// checkKeys says for each identity file whether it needs a passphrase.
func checkKeys(ctx context.Context, c *checking) (string, error) {
	keys := guest.Keys(ctx, c.target, guest.DialOptions{})
	need := 0
	for _, k := range keys {
		line := k.File + ": " + k.State.String()
		if k.Fingerprint != "" {
			line += " (" + k.Type + " " + k.Fingerprint + ")"
		}
		if k.Err != nil {
			line += ": " + k.Err.Error()
		}
		if k.State == guest.KeyPassphrase {
			need++
		}
		c.details = append(c.details, guesttext.Line(line))
	}
	switch {
	case len(keys) == 0:
		return "no identity files: the agent's keys only", nil
	case need > 0:
		return fmt.Sprintf("%d identity file(s), %d need a passphrase at login", len(keys), need), nil
	}
	return fmt.Sprintf("%d identity file(s), none needs a passphrase", len(keys)), nil
}

func (c *checking) dialOptions() guest.DialOptions {
	return guest.DialOptions{KeepAlive: -1, Prompt: newPrompter(c.env.Ask, c.env.CannotAsk)}
}

func checkReachable(ctx context.Context, c *checking) (string, error) {
	if c.vmDown != "" {
		return "", &skipNow{c.vmDown}
	}
	t := c.target
	key, err := guest.FetchHostKeyVia(ctx, t, c.dialOptions())
	if err != nil {
		return "", err
	}
	c.key = key
	return fmt.Sprintf("%s at %s: sshd answers", t.Alias, t.Addr()), nil
}

// checkLoginShell asks sshd's session for the user's login shell, which
// runs every command xvmview sends.
func checkLoginShell(ctx context.Context, c *checking) (string, error) {
	var out headBuffer
	if err := c.client.Run(ctx, `printf '%s' "${SHELL-}"`, nil, &out, io.Discard); err != nil {
		return "", err
	}
	sh := out.line()
	if sh == "" {
		return "unknown (sshd set no SHELL)", nil
	}
	return sh + " (xvmview's commands run in /bin/sh under any login shell)", nil
}

func checkHostKey(_ context.Context, c *checking) (string, error) {
	t := c.target
	err := guest.CheckHostKey(t, c.key)
	var hk *guest.HostKeyError
	switch {
	case err == nil:
		return fmt.Sprintf("%s %s is known", c.key.Type(), ssh.FingerprintSHA256(c.key)), nil
	case errors.As(err, &hk) && hk.Changed:
		return fmt.Sprintf("CHANGED: %s presents %s %s, but %s line %d holds a different key", t.Addr(), hk.KeyType, hk.Fingerprint, hk.KnownHosts, hk.Line), err
	case errors.As(err, &hk):
		return fmt.Sprintf("unknown: %s %s is not in %s", hk.KeyType, hk.Fingerprint, strings.Join(t.KnownHostsFiles, ", ")), err
	}
	return "", err
}

func checkLogin(ctx context.Context, c *checking) (string, error) {
	// The client outlives ctx: ctx bounds the dial only.
	cl, err := guest.Dial(ctx, c.target, c.dialOptions())
	if err != nil {
		return "", err
	}
	c.client = cl
	return "as " + c.target.User, nil
}

// remoteProgram checks with `command -v` that prog runs on the guest, in the
// PATH the guest's sshd gives commands (the one xvmview run uses). key is
// the profile key naming prog; "" for xauth, which the launch itself needs.
func (c *checking) remoteProgram(ctx context.Context, prog, key string) (string, error) {
	cmd, err := guest.Command(nil, []string{"command", "-v", prog})
	if err != nil {
		return "", err
	}
	// What the guest prints is capped and made one visible line
	// (headBuffer.line): a newline in it could forge an "ok" line.
	var out headBuffer
	err = c.client.Run(ctx, cmd, nil, &out, io.Discard)
	var ee *guest.ExitError
	switch {
	case errors.As(err, &ee) && key == "":
		return prog + " not found in the guest's PATH", &NoXauthError{Host: c.target.HostName}
	case errors.As(err, &ee):
		return prog + " not found in the guest's PATH", &ProgramNotFoundError{Program: prog, Key: key, Host: c.target.HostName}
	case err != nil:
		return "", err
	}
	return out.line(), nil
}
