package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/profile"
)

// Shell completion comes from cobra's own completion command (xvmview
// completion bash|zsh|fish|powershell); the functions here complete profile
// names as the ValidArgsFunction of the commands that take them.

// completeProfiles completes a command whose first argument is one profile:
// it offers the names of the profiles 'xvmview list' shows (with their
// descriptions), and nothing after the first argument, so the app's
// arguments after "--" are left alone.
func (c *cli) completeProfiles(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return c.profileCompletions(toComplete, nil), cobra.ShellCompDirectiveNoFileComp
}

// completeProfileArgs completes a command that takes any number of
// profiles, offering each name that is not given yet.
func (c *cli) completeProfileArgs(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return c.profileCompletions(toComplete, args), cobra.ShellCompDirectiveNoFileComp
}

// completeInstalled completes the profiles that have a menu entry, for
// 'xvmview desktop remove'.
func (c *cli) completeInstalled(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	names, err := desktop.Installed(c.applicationsDir())
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// profileCompletions lists the profiles whose names start with prefix,
// except those in skip, each with its description (one line).
func (c *cli) profileCompletions(prefix string, skip []string) []cobra.Completion {
	entries, err := profile.List(c.profileDirs())
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, e := range entries {
		if !strings.HasPrefix(e.Name, prefix) || slices.Contains(skip, e.Name) || profile.ValidName(e.Name) != nil {
			continue
		}
		desc := e.Description
		if e.Err != nil {
			desc = "(broken: see 'xvmview list')"
		}
		out = append(out, cobra.CompletionWithDesc(e.Name, strings.Join(strings.Fields(desc), " ")))
	}
	return out
}
