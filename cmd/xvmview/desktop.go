package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/profile"
)

// applicationsDir is where menu entries go: $XDG_DATA_HOME/applications.
func (c *cli) applicationsDir() string { return filepath.Join(c.dirs.DataHome, "applications") }

func (c *cli) desktopCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "desktop",
		Short: "Add profiles to your desktop's application menu, or take them out",
		Long: `Desktop writes and removes freedesktop.org menu entries (.desktop files) in
$XDG_DATA_HOME/applications (usually ~/.local/share/applications), one per profile,
named xvmview-PROFILE.desktop. Each runs 'xvmview run PROFILE' with this xvmview
binary by its absolute path, so install again after moving the binary.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q: use install or remove", args[0], cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.desktopInstallCommand(), c.desktopRemoveCommand())
	return cmd
}

// desktopArgs checks the arguments of a command that takes profile names
// or --all.
func desktopArgs(all bool, args []string) error {
	switch {
	case all && len(args) > 0:
		return usageError{errors.New("give profile names or --all, not both")}
	case !all && len(args) == 0:
		return usageError{errors.New("give one or more profile names (see 'xvmview list'), or --all")}
	}
	for _, a := range args {
		if err := profile.ValidName(a); err != nil {
			return usageError{err}
		}
	}
	return nil
}

func (c *cli) desktopInstallCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "install [PROFILE...|--all]",
		Short: "Add menu entries for profiles",
		Long: `Install writes a menu entry for each profile named, or for every profile that
'xvmview list' shows with --all (broken ones are reported and skipped). The menu shows
the profile's description; its icon and categories come from the profile. An entry
that xvmview wrote before is replaced; any other file of that name is left alone.`,
		Example: `  xvmview desktop install firefox-domu
  xvmview desktop install --all`,
		Args:              func(_ *cobra.Command, args []string) error { return desktopArgs(all, args) },
		ValidArgsFunction: c.completeProfileArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			return c.desktopInstall(all, args)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "install an entry for every profile")
	return cmd
}

func (c *cli) desktopInstall(all bool, names []string) error {
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.EvalSymlinks(bin)
	}
	if err != nil {
		return fmt.Errorf("find xvmview's own path for the menu entries: %w", err)
	}
	dirs := c.profileDirs()
	if all {
		entries, err := profile.List(dirs)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			c.noticef("no profiles to install")
		}
		for _, e := range entries {
			if e.Err != nil {
				c.itemFailed(fmt.Errorf("skipped %s: %w", e.Name, e.Err))
				continue
			}
			names = append(names, e.Name)
		}
	}
	dir := c.applicationsDir()
	for _, name := range names {
		p, err := profile.Load(name, dirs)
		if err != nil {
			c.itemFailed(err)
			continue
		}
		e, err := desktop.New(p, bin)
		if err != nil {
			c.itemFailed(err)
			continue
		}
		path, err := desktop.Install(dir, e)
		if err != nil {
			c.itemFailed(fmt.Errorf("install menu entry for %s: %w", name, err))
			continue
		}
		fmt.Fprintf(c.stdout, "installed %s\n", path)
	}
	return nil
}

func (c *cli) desktopRemoveCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "remove [PROFILE...|--all]",
		Short: "Take profiles' menu entries out",
		Long: `Remove deletes the menu entry of each profile named, or every entry that xvmview
installed with --all. It only deletes files that xvmview wrote (they carry an
X-Xvmview-Profile line); a profile need not exist any more to have its entry removed.`,
		Example: `  xvmview desktop remove firefox-domu
  xvmview desktop remove --all`,
		Args:              func(_ *cobra.Command, args []string) error { return desktopArgs(all, args) },
		ValidArgsFunction: c.completeInstalled,
		RunE: func(_ *cobra.Command, args []string) error {
			return c.desktopRemove(all, args)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every entry xvmview installed")
	return cmd
}

func (c *cli) desktopRemove(all bool, names []string) error {
	dir := c.applicationsDir()
	if all {
		var err error
		if names, err = desktop.Installed(dir); err != nil {
			return fmt.Errorf("list menu entries: %w", err)
		}
		if len(names) == 0 {
			c.noticef("xvmview has no menu entries in %s", dir)
		}
	}
	for _, name := range names {
		path, err := desktop.Remove(dir, name)
		if err != nil {
			c.itemFailed(err)
			continue
		}
		fmt.Fprintf(c.stdout, "removed %s\n", path)
	}
	return nil
}

// itemFailed reports an error of one of several items and makes the exit
// status 1, while the command goes on with the others.
func (c *cli) itemFailed(err error) {
	c.report(err)
	c.status = exitFailure
}
