package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/session"
)

// The one place where an error becomes what the user reads: its words
// (the error's own text, which states the facts) and a hint saying what to
// do about it. run, check, trust and the rest all report through it.

// report prints err in the one voice and returns the exit status.
func (c *cli) report(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		c.errorf("%v", ue.error)
		c.hintf("see 'xvmview --help'")
		return exitUsage
	}
	var lines []string
	for _, e := range joined(err) {
		c.errorf("%v", e)
		lines = append(lines, guesttext.LineCap(e.Error(), maxMessage))
	}
	hint := c.hint(err)
	if hint != "" {
		for _, line := range strings.Split(hint, "\n") {
			c.hintf("%s", line)
		}
	}
	if c.desk != nil {
		c.desk.failed(lines, guesttext.LineCap(strings.ReplaceAll(hint, "\n", "; "), maxMessage))
	}
	return exitFailure
}

// joined returns the errors that errors.Join joined into err, each on a
// line of its own, or err alone.
func joined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, joined(e)...)
	}
	return out
}

// hint says what the user can do about err, or "".
func (c *cli) hint(err error) string {
	return hintFor(err, c.profile, c.env.Getenv("DISPLAY"))
}

// hintFor says what the user can do about err, or "": one line, or one
// per alternative (separated by "\n"). profileName is the
// profile the command was about ("" for none) and display the host display
// ($DISPLAY), which some hints name.
func hintFor(err error, profileName, display string) string {
	if profileName == "" {
		profileName = "PROFILE"
	}
	var (
		nf  *session.XephyrNotFoundError
		xb  *session.XephyrBrokenError
		xe  *session.XephyrExitError
		nd  session.NoDisplayError
		hd  *session.HostDisplayError
		gc  *session.GuestConfigError
		un  *session.UnreachableError
		hk  *session.HostKeyError
		au  *session.AuthError
		pp  *session.PassphraseError
		pc  *session.ProxyCommandError
		dr  *session.HandshakeDroppedError
		pe  *profile.Error
		pnf *profile.NotFoundError
		gl  *session.GuestLostError
		al  *session.AuthLostError
		ope *session.OpenDisplayError
		fr  *session.ForwardingRefusedError
		nx  *session.NoXauthError
		pn  *session.ProgramNotFoundError
		nr  *session.NotRunningError
		ie  *session.IncompleteError
		ud  *session.UnsafeDirError
		ns  noSessionError
		fc  *session.FailedCleanupError
	)
	switch {
	case errors.As(err, &nf):
		return fmt.Sprintf("install it: sudo apt-get install --no-install-recommends %s", nf.Package)
	case errors.As(err, &xb):
		return "reinstall it: sudo apt-get install --reinstall xserver-xephyr"
	case errors.As(err, &nd):
		return "run xvmview from your desktop session, or try 'make demo', which starts a private Xvfb"
	case errors.As(err, &hd):
		return hostDisplayHint(hd.Display)
	case errors.As(err, &xe) && xe.Display < 0:
		return hostDisplayHint(display)
	case errors.As(err, &gc):
		return "fix the guest's entry in ~/.ssh/config or the profile"
	case errors.As(err, &un) && un.Via != "":
		return fmt.Sprintf("can jump host %s reach %s? Check HostName/Port in ~/.ssh/config (`ssh -G %s` shows them)", un.Via, un.Addr, un.Via)
	case errors.As(err, &un):
		return fmt.Sprintf("is the guest running, and does its sshd listen on %s? Check the profile's host and port, and HostName/Port in ~/.ssh/config", un.Addr)
	case errors.As(err, &hk) && hk.Changed:
		return fmt.Sprintf("this may be an attack: someone may be between you and the guest. If you know the guest was reinstalled, "+
			"check the new fingerprint on its console, remove the old key with `ssh-keygen -R %s -f %s`, then run `xvmview trust %s`",
			hk.KnownHostsName(), hk.KnownHosts, profileName)
	case errors.As(err, &hk) && hk.Jump:
		return fmt.Sprintf("compare the fingerprint with the jump host's own (on its console: %s), then accept it with `ssh %s` once",
			fingerprintCommand(hk.KeyType), hk.Alias)
	case errors.As(err, &hk) && hk.Declined:
		return fmt.Sprintf("if the fingerprint is the guest's own (on its console: %s), run it again and answer yes, or use `xvmview trust %s`",
			fingerprintCommand(hk.KeyType), profileName)
	case errors.As(err, &pc):
		return fmt.Sprintf("check the ProxyCommand in your ssh config: xvmview runs `%s` through sh -c here, and its output must be the SSH server of %s", pc.Command, pc.Addr)
	case errors.As(err, &pp):
		return fmt.Sprintf("give the key's passphrase when asked, or add the key to your agent once: ssh-add %s", pp.File)
	case errors.As(err, &hk):
		return fmt.Sprintf("compare the fingerprint with the guest's own (on its console: %s), then accept it with `xvmview trust %s`",
			fingerprintCommand(hk.KeyType), profileName)
	case errors.As(err, &dr):
		return "the guest's sshd drops new connections while too many logins are in progress (MaxStartups in " +
			"/etc/ssh/sshd_config on the guest, default 10:30:100): start fewer sessions at once, or raise it there " +
			"(e.g. \"MaxStartups 50:30:200\") and reload sshd; check the guest's sshd log"
	case errors.As(err, &au):
		var add []string
		for _, f := range au.Encrypted {
			add = append(add, "ssh-add "+f)
		}
		if len(add) > 0 {
			return fmt.Sprintf("add the passphrase-protected keys to your agent (%s), or check the user and keys with: ssh -v %s", strings.Join(add, "; "), au.Addr)
		}
		return fmt.Sprintf("check the user and keys with: ssh -v %s", au.Addr)
	case errors.As(err, &pnf):
		return "run 'xvmview list' to see the available profiles"
	case errors.As(err, &pe):
		return "fix the profile, then check it with 'xvmview list' or 'xvmview run NAME --dry-run'"
	case errors.As(err, &gl):
		return "the guest's processes end by themselves when the connection drops; run the profile again when the guest is back"
	case errors.As(err, &al):
		return "something on the guest ended xvmview's keeper of the session's cookie file (a process killer, a logout that ends the user's processes); run the profile again"
	case errors.As(err, &fr):
		return `in /etc/ssh/sshd_config on the guest set "AllowTcpForwarding yes" (or "remote"), ` +
			`make sure "DisableForwarding yes" is not set and no Match block or PermitListen line overrides this, ` +
			`and that the key's line in authorized_keys has no "restrict" or "no-port-forwarding" option; ` +
			"then reload sshd (e.g. `systemctl reload ssh`)\n" +
			`or, on a host-only network you trust, set transport = "tcp" in the profile (X then crosses it in clear)`
	case errors.As(err, &ope):
		return "this Xephyr does not enforce its -auth file: report it with 'Xephyr -version' output"
	case errors.As(err, &nx):
		return "install xauth on the guest (Debian/Ubuntu: apt-get install xauth; Fedora: dnf install xorg-x11-xauth)"
	case errors.As(err, &pn) && pn.Host == "":
		return fmt.Sprintf("install %s, or give its full path in the profile", pn.Program)
	case errors.As(err, &pn):
		return fmt.Sprintf("install %s on the guest, or give its full path in the profile's %s", pn.Program, pn.Key)
	case errors.As(err, &nr):
		return fmt.Sprintf("'xvmview stop %s' cleans up what it left behind now (the next 'xvmview run' does, in the background); 'xvmview ps' shows the running sessions", nr.ID)
	case errors.As(err, &ie):
		return "the next 'xvmview run' retries the cleanup in the background, 'xvmview stop ID' now; the launcher's own error message says what failed"
	case errors.As(err, &ud):
		return fmt.Sprintf("remove %s or fix its owner and mode (0700, owned by you), or set XDG_RUNTIME_DIR to a private directory", ud.Path)
	case errors.As(err, &ns):
		return "run 'xvmview ps' to see the running sessions"
	case errors.As(err, &fc):
		return failedCleanupHint(fc.Session.ID)
	}
	return vmHint(err)
}

// hostDisplayHint is what to do when Xephyr cannot open the host display.
func hostDisplayHint(display string) string {
	return fmt.Sprintf("Xephyr draws its window on DISPLAY=%s: check that you can open it (xdpyinfo) and that XAUTHORITY is right", display)
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

// failedCleanupHint is what to do about stale session id (or "ID" for
// several) whose cleanup failed for good.
func failedCleanupHint(id string) string {
	return fmt.Sprintf("fix the guest (is it up? does its xauth work?), then retry with 'xvmview stop %s'", id)
}
