package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/session"
)

func (c *cli) stopCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stop PROFILE|ID",
		Short: "End a running session as if its app had exited",
		Long: `Stop ends a running session with the same teardown as a normal exit: it sends
SIGTERM to the session's launcher (after checking that the PID is still that launcher)
and waits up to 15 s until the launcher has closed the app, the window manager and
Xephyr, removed the guest's session Xauthority file and its session directory (80 s more
when the session shuts its VM down, see shutdown_on_exit). The launcher then exits with
status 143.

Name a session by its ID (from 'xvmview ps') or by its profile; a profile name stops
every running session of that profile. A session whose launcher is gone is cleaned up
now: its Xephyr ended, its guest Xauthority entry and its directory removed.`,
		Example: `  xvmview ps
  xvmview stop web            # every session of profile web
  xvmview stop 3f2a9c0d11e4   # one session`,
		Args:              exactlyOne("stop needs a profile name or a session ID (see 'xvmview ps')"),
		ValidArgsFunction: c.completeSessions,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.stop(cmd.Context(), args[0])
		},
	}
}

// noSessionError: nothing running matches what stop was given.
type noSessionError struct{ what string }

func (e noSessionError) Error() string {
	return fmt.Sprintf("no running session with ID or profile %q", e.what)
}

func (c *cli) stop(ctx context.Context, what string) error {
	root := c.runtimeRoot()
	live, stale, err := session.Live(root)
	if err != nil {
		return err
	}
	matches := sessionsFor(live, what)
	if len(matches) == 0 {
		if old := sessionsFor(stale, what); len(old) > 0 {
			return c.cleanStale(ctx, root, old)
		}
		return noSessionError{what}
	}
	var errs []error
	for _, s := range matches {
		c.noticef("stopping session %s (profile %s, display :%d, launcher pid %d)", s.ID, s.Profile, s.Display, s.LauncherPID)
		if err := session.Stop(ctx, root, s); err != nil {
			errs = append(errs, err)
			continue
		}
		c.noticef("session %s ended", s.ID)
	}
	return errors.Join(errs...)
}

// cleanStale cleans up after sessions whose launcher is gone, now.
func (c *cli) cleanStale(ctx context.Context, root string, states []session.State) error {
	var errs []error
	for _, s := range states {
		c.noticef("session %s (profile %s) is not running: cleaning up after it", s.ID, s.Profile)
		if err := session.CleanSession(ctx, root, s.ID); err != nil {
			errs = append(errs, fmt.Errorf("clean up after session %s: %w", s.ID, err))
			continue
		}
		c.noticef("cleaned up after session %s", s.ID)
	}
	return errors.Join(errs...)
}

// sessionsFor returns the session whose ID is what, else every session of
// the profile named what.
func sessionsFor(states []session.State, what string) []session.State {
	for _, s := range states {
		if s.ID == what {
			return []session.State{s}
		}
	}
	var out []session.State
	for _, s := range states {
		if s.Profile == what {
			out = append(out, s)
		}
	}
	return out
}

// completeSessions completes stop's argument: the running sessions' IDs and
// their profiles.
func (c *cli) completeSessions(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	live, _, err := session.Live(c.runtimeRoot())
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	seen := map[string]bool{}
	add := func(name, desc string) {
		if !seen[name] && strings.HasPrefix(name, toComplete) {
			seen[name] = true
			out = append(out, cobra.CompletionWithDesc(name, desc))
		}
	}
	for _, s := range live {
		add(s.Profile, "every running session of this profile")
	}
	for _, s := range live {
		add(s.ID, fmt.Sprintf("profile %s, display :%d", s.Profile, s.Display))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
