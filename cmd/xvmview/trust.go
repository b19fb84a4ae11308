package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/profile"
)

func (c *cli) trustCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "trust PROFILE",
		Short: "Show a guest's host key and add it to known_hosts once you confirm it",
		Long: `Trust connects to the profile's guest without logging in, shows the host key it
presents (type and SHA256 fingerprint) and, when your known_hosts does not know it yet,
asks before adding it to the first UserKnownHostsFile (~/.ssh/known_hosts unless your
ssh config says otherwise). Compare the fingerprint with the one the guest shows on its
own console before you type yes. The line is written as ssh(1) would write it, hashed
when your ssh config sets HashKnownHosts yes (Debian's /etc/ssh/ssh_config does).

A key that differs from the one on record is never added: the guest may be an
impostor. If you know why it changed (the guest was reinstalled), remove the old key
with ssh-keygen -R first.`,
		Example:           `  xvmview trust web`,
		Args:              exactlyOne("trust needs a profile name (see 'xvmview list')"),
		ValidArgsFunction: c.completeProfiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.trust(cmd.Context(), args[0], cmd.InOrStdin())
		},
	}
}

// localProfileError: a local profile has no guest to check.
type localProfileError struct{ name string }

func (e localProfileError) Error() string {
	return fmt.Sprintf("profile %s runs on this machine: it has no guest and no host key", e.name)
}

// keyChangedError: trust refuses a key that differs from the recorded one.
type keyChangedError struct {
	hk      *guest.HostKeyError
	name    string // known_hosts name of the guest
	profile string
}

func (e *keyChangedError) Error() string {
	return fmt.Sprintf("the host key of %s has CHANGED: %s line %d holds a different key; not adding the new one",
		e.hk.Addr, e.hk.KnownHosts, e.hk.Line)
}

func (e *keyChangedError) Hint() string {
	return fmt.Sprintf("this may be an attack: someone may be between you and the guest. If you know the guest was reinstalled, "+
		"check the new fingerprint on its console, remove the old key with `ssh-keygen -R %s -f %s`, then run `xvmview trust %s` again",
		e.name, e.hk.KnownHosts, e.profile)
}

// notConfirmedError: the user did not type yes.
type notConfirmedError struct{ file string }

func (e notConfirmedError) Error() string {
	return "host key not added: the answer was not yes; nothing was written to " + e.file
}

func (c *cli) trust(ctx context.Context, name string, stdin io.Reader) error {
	if err := profile.ValidName(name); err != nil {
		return usageError{err}
	}
	p, err := profile.Load(name, profile.DefaultDirs())
	if err != nil {
		return err
	}
	if p.Local() {
		return localProfileError{p.Name}
	}
	t, err := guest.Resolve(p.Host, guest.Overrides{User: p.User, Port: p.Port, IdentityFile: p.IdentityFile}, guest.Config{})
	if err != nil {
		return fmt.Errorf("profile %s: %w", p.Name, err)
	}
	if len(t.KnownHostsFiles) == 0 {
		return fmt.Errorf("profile %s: UserKnownHostsFile is none for %s: there is no known_hosts file to add the key to", p.Name, t.Alias)
	}
	file := t.KnownHostsFiles[0]

	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	key, err := guest.FetchHostKey(fctx, t)
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "guest:        %s (address %s, port %d)\n", t.Alias, t.HostName, t.Port)
	fmt.Fprintf(c.stdout, "host key:     %s %s\n", key.Type(), ssh.FingerprintSHA256(key))

	err = guest.CheckHostKey(t, key)
	var hk *guest.HostKeyError
	switch {
	case err == nil:
		fmt.Fprintf(c.stdout, "This key is already known (%s): nothing to do.\n", strings.Join(t.KnownHostsFiles, ", "))
		return nil
	case errors.As(err, &hk) && hk.Changed:
		return &keyChangedError{hk: hk, name: guest.KnownHostsName(t), profile: p.Name}
	case errors.As(err, &hk):
		// Unknown: ask.
	default:
		return err
	}

	hash, err := guest.HashKnownHosts(t.Alias, guest.Config{}, guest.SystemSSHConfig)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "This key is not in %s yet.\n", file)
	fmt.Fprintf(c.stdout, "Compare the fingerprint with the guest's own, shown on its console by:\n  %s\n", fingerprintCommand(key.Type()))
	fmt.Fprintf(c.stdout, "Add this key to %s? Type yes to continue: ", file)
	answer, err := readLine(ctx, stdin)
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(c.stdout)
		return fmt.Errorf("read the answer: %w", err)
	}
	if !isTerminal(stdin) || errors.Is(err, io.EOF) {
		fmt.Fprintln(c.stdout) // the answer was not echoed, or had no newline
	}
	if answer != "yes" {
		return notConfirmedError{file}
	}
	if err := guest.AppendKnownHost(file, guest.KnownHostsLine(t, key, hash)); err != nil {
		return err
	}
	// Read it back the way every later login will.
	if err := guest.CheckHostKey(t, key); err != nil {
		return fmt.Errorf("added the key to %s, but it does not vouch for %s now: %w", file, t.Addr(), err)
	}
	form := "plain host name"
	if hash {
		form = "hashed host name, as HashKnownHosts yes asks"
	}
	fmt.Fprintf(c.stdout, "Added the %s key of %s to %s (%s).\n", key.Type(), guest.KnownHostsName(t), file, form)
	return nil
}

// readLine reads one line from r without its line ending. It returns early
// with the context's error when ctx ends (a signal); the read itself then
// stays blocked until r returns, which the process's exit ends.
func readLine(ctx context.Context, r io.Reader) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r"), err}
	}()
	select {
	case res := <-ch:
		return res.s, res.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
