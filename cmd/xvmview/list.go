package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/profile"
)

func (c *cli) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the profiles you can run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := profile.List(c.profileDirs())
			if err != nil {
				return err
			}
			w := 4
			for _, e := range entries {
				w = max(w, len(e.Name))
			}
			for _, e := range entries {
				desc := e.Description
				if e.Err != nil {
					desc = "BROKEN: " + e.Err.Error()
				}
				fmt.Fprintf(c.stdout, "%-*s  %s\n", w, e.Name, strings.TrimSpace(desc))
			}
			return nil
		},
	}
}
