package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/session"
)

func (c *cli) vmCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Control the VM behind a profile's guest",
		Args:  cobra.NoArgs,
	}
	var grace time.Duration
	stop := &cobra.Command{
		Use:   "stop PROFILE",
		Short: "Shut down the VM of a profile",
		Long: `Vm stop shuts down the libvirt domain that a profile names (its vm key): it presses
the domain's ACPI power button, waits for it to power off, and forces it off (libvirt's
destroy) when the grace has passed. It refuses while a running session uses the VM; end
those first with 'xvmview stop'. A domain that is shut off already is left alone.`,
		Example: `  xvmview vm stop web
  xvmview vm stop web --grace 10s`,
		Args:              exactlyOne("vm stop needs a profile name (see 'xvmview list')"),
		ValidArgsFunction: c.completeProfiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.vmStop(cmd.Context(), args[0], grace)
		},
	}
	stop.Flags().DurationVar(&grace, "grace", session.DefaultShutdownGrace, "how long the VM may take to power off before it is forced off")
	cmd.AddCommand(stop)
	return cmd
}

func (c *cli) vmStop(ctx context.Context, name string, grace time.Duration) error {
	if grace <= 0 {
		return usageError{fmt.Errorf("--grace must be more than 0, not %s", grace)}
	}
	p, err := c.loadProfile(name)
	if err != nil {
		return err
	}
	was, forced, err := session.StopVM(ctx, c.runtimeRoot(), p, grace)
	switch {
	case err != nil:
		return err
	case was == "shut off":
		c.noticef("domain %s was shut off already", p.VM.Domain)
	case forced:
		c.noticef("domain %s did not power off within %s: forced off", p.VM.Domain, grace)
	default:
		c.noticef("domain %s is shut off", p.VM.Domain)
	}
	return nil
}
