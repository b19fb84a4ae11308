package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/session"
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
			return c.trust(cmd.Context(), args[0], c.env.Stdin)
		},
	}
}

// notConfirmedError: the user did not type yes.
type notConfirmedError struct{ file string }

func (e notConfirmedError) Error() string {
	return "host key not added: the answer was not yes; nothing was written to " + e.file
}

func (c *cli) trust(ctx context.Context, name string, stdin io.Reader) error {
	p, err := c.loadProfile(name)
	if err != nil {
		return err
	}
	k, err := session.FetchGuestKey(ctx, p, c.sshConfig())
	if err != nil {
		return err
	}
	t := k.Guest
	fmt.Fprintf(c.stdout, "guest:        %s (address %s, port %d)\n", t.Alias, t.HostName, t.Port)
	fmt.Fprintf(c.stdout, "host key:     %s %s\n", k.Type, k.Fingerprint)
	switch k.State {
	case session.KeyKnown:
		fmt.Fprintf(c.stdout, "This key is already known (%s): nothing to do.\n", strings.Join(t.KnownHostsFiles, ", "))
		return nil
	case session.KeyChanged:
		return session.AddGuestKey(k) // refuses, saying why
	}

	fmt.Fprintf(c.stdout, "This key is not in %s yet.\n", k.File)
	fmt.Fprintf(c.stdout, "Compare the fingerprint with the guest's own, shown on its console by:\n  %s\n", fingerprintCommand(k.Type))
	fmt.Fprintf(c.stdout, "Add this key to %s? Type yes to continue: ", k.File)
	answer, err := readLine(ctx, stdin)
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(c.stdout)
		return fmt.Errorf("read the answer: %w", err)
	}
	if !desktop.Terminal(stdin) || errors.Is(err, io.EOF) {
		fmt.Fprintln(c.stdout) // the answer was not echoed, or had no newline
	}
	if answer != "yes" {
		return notConfirmedError{k.File}
	}
	if err := session.AddGuestKey(k); err != nil {
		return err
	}
	form := "plain host name"
	if k.Hashed {
		form = "hashed host name, as HashKnownHosts yes asks"
	}
	fmt.Fprintf(c.stdout, "Added the %s key of %s to %s (%s).\n", k.Type, k.KnownHostsName(), k.File, form)
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
