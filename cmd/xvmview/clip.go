package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/session"
)

func (c *cli) clipCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clip",
		Short: "Move clipboard text into or out of a running session",
		Long: `Clip moves text between you and a running session's guest, as the window's
Ctrl+Shift+V and Ctrl+Shift+C do: only when you ask, text only, at most the profile's
clipboard_max_bytes (default 256 KiB). The session log notes each transfer's direction
and size, never the text.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "push PROFILE|ID",
		Short: "Offer text from stdin to the guest for one paste",
		Long: `Push reads text from stdin and makes it the guest's CLIPBOARD for one paste; it
is withdrawn after that paste, or after 30 s.`,
		Example:           `  echo https://example.org | xvmview clip push web`,
		Args:              exactlyOne("clip push needs a profile name or a session ID (see 'xvmview ps')"),
		ValidArgsFunction: c.completeSessions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.clipPush(cmd.Context(), args[0], cmd.InOrStdin())
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "pull PROFILE|ID",
		Short: "Write the guest's clipboard text to stdout",
		Long: `Pull writes the text of the guest's CLIPBOARD to stdout. The text comes from the
guest: on a terminal it is shown through xvmview's sanitizer (control characters made
visible, long text cut); into a pipe or a file it is written as the guest sent it,
since that is where you chose to put it.`,
		Example:           `  xvmview clip pull web > page-url.txt`,
		Args:              exactlyOne("clip pull needs a profile name or a session ID (see 'xvmview ps')"),
		ValidArgsFunction: c.completeSessions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.clipPull(cmd.Context(), args[0])
		},
	})
	return cmd
}

// clipSession finds the one running session that what names.
func (c *cli) clipSession(what string) (string, session.State, error) {
	root := c.runtimeRoot()
	live, stale, err := session.Live(root)
	if err != nil {
		return "", session.State{}, err
	}
	matches := sessionsFor(live, what)
	switch {
	case len(matches) == 1:
		return root, matches[0], nil
	case len(matches) > 1:
		return "", session.State{}, usageError{fmt.Errorf("%d sessions of profile %s are running: name one by its ID (see 'xvmview ps')", len(matches), what)}
	}
	if old := sessionsFor(stale, what); len(old) > 0 {
		return "", session.State{}, &session.NotRunningError{ID: old[0].ID, PID: old[0].LauncherPID}
	}
	return "", session.State{}, noSessionError{what}
}

func (c *cli) clipPush(ctx context.Context, what string, stdin io.Reader) error {
	root, st, err := c.clipSession(what)
	if err != nil {
		return err
	}
	text, err := io.ReadAll(io.LimitReader(stdin, profile.MaxClipboardMax+1))
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if len(text) > profile.MaxClipboardMax {
		return fmt.Errorf("stdin holds more than %d bytes, more than any session takes", profile.MaxClipboardMax)
	}
	if err := session.ClipPush(ctx, root, st, text); err != nil {
		return fmt.Errorf("clip push to session %s: %w", st.ID, err)
	}
	c.noticef("%d bytes ready for one paste in session %s (profile %s)", len(text), st.ID, st.Profile)
	return nil
}

func (c *cli) clipPull(ctx context.Context, what string) error {
	root, st, err := c.clipSession(what)
	if err != nil {
		return err
	}
	text, err := session.ClipPull(ctx, root, st, desktop.Terminal(c.stdout))
	if err != nil {
		var off *session.ClipboardOffError
		if errors.As(err, &off) {
			return err
		}
		return fmt.Errorf("clip pull from session %s: %w", st.ID, err)
	}
	_, err = c.stdout.Write(text)
	return err
}
