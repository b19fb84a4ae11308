package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/session"
)

func (c *cli) psCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ps",
		Short: "List the running sessions",
		Long: `Ps lists the sessions whose launcher is running: their ID, profile, nested
display, guest, the launcher's PID and how long they have run; when a session's profile
names a VM, its libvirt domain and the domain's state now. Sessions whose launcher
died are not listed; a note on stderr counts them (every 'xvmview run' cleans up after
them in the background, up to 3 tries each). A session whose cleanup failed 3 times is
reported on stderr with what failed: fix the guest, then 'xvmview stop ID' retries it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.ps(cmd.Context()) },
	}
}

func (c *cli) ps(ctx context.Context) error {
	root := c.runtimeRoot()
	live, stale, err := session.Live(root)
	if err != nil {
		return err
	}
	// From the same reading of root: the counts below add up.
	failed := session.FailedOf(stale)
	if n := len(stale) - len(failed); n > 0 {
		c.noticef("%d stale session(s) not listed (launcher gone; cleaned up by the next run)", n)
	}
	for _, s := range failed {
		c.noticef("%v", &session.FailedCleanupError{Session: s})
	}
	switch len(failed) {
	case 0:
	case 1:
		c.hintf("%s", failedCleanupHint(failed[0].ID))
	default:
		c.hintf("%s", failedCleanupHint("ID"))
	}
	if len(live) == 0 {
		c.noticef("no sessions running")
		return nil
	}
	// The VM column only when a session has a VM: its state is asked of
	// libvirt now.
	vms := session.VMStates(ctx, live)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if len(vms) > 0 {
		fmt.Fprintln(tw, "ID\tPROFILE\tDISPLAY\tGUEST\tPID\tUPTIME\tVM")
	} else {
		fmt.Fprintln(tw, "ID\tPROFILE\tDISPLAY\tGUEST\tPID\tUPTIME")
	}
	now := time.Now()
	for _, s := range live {
		display := "-" // Xephyr is starting
		if s.Display >= 0 {
			display = ":" + strconv.Itoa(s.Display)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s", s.ID, s.Profile, display, s.Where(), s.LauncherPID, uptime(now.Sub(s.Started)))
		switch {
		case s.VM != nil:
			fmt.Fprintf(tw, "\t%s (%s)", s.VM.Domain, vms[s.VM.Key()])
		case len(vms) > 0:
			fmt.Fprint(tw, "\t-")
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// uptime formats d as ps(1)-like short text: 42s, 5m07s, 3h05m, 2d04h.
func uptime(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
