package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// The man pages in docs/man are made from the same command tree as --help.
// Regenerate them after changing a command, its help or its flags:
//
//go:generate go run . __man ../../docs/man

// manDate is the date in the pages' headers, fixed so that regenerating them
// changes nothing unless the commands did. Move it on for a release.
var manDate = time.Date(2026, time.November, 28, 0, 0, 0, 0, time.UTC)

// manCommand is the hidden `xvmview __man DIR`, which writes the man pages
// (xvmview.1, xvmview-run.1, ...) to DIR.
func (c *cli) manCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "Write the man pages to DIR",
		Hidden: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("__man needs the directory to write the pages to")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeManPages(cmd.Root(), args[0])
		},
	}
}

// writeManPages writes a page for root and each of its visible commands to
// dir, replacing the pages there (xvmview*.1) and removing those of commands
// that are gone. The pages are made in a temporary directory first, so a
// failure leaves dir as it was.
func writeManPages(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".man-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root.DisableAutoGenTag = true // no "generated on" date in the pages
	date := manDate
	err = doc.GenManTreeFromOpts(root, doc.GenManTreeOptions{
		Header: &doc.GenManHeader{
			Section: "1",
			Date:    &date,
			Source:  "xvmview",
			Manual:  "xvmview manual",
		},
		Path:             tmp,
		CommandSeparator: "-",
	})
	if err != nil {
		return fmt.Errorf("generate man pages: %w", err)
	}
	made, err := manPages(tmp)
	if err != nil {
		return err
	}
	old, err := manPages(dir)
	if err != nil {
		return err
	}
	for _, name := range old {
		if _, err := os.Stat(filepath.Join(tmp, name)); errors.Is(err, os.ErrNotExist) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	for _, name := range made {
		if err := os.Chmod(filepath.Join(tmp, name), 0o644); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// manPages lists the pages xvmview makes in dir: xvmview*.1.
func manPages(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		if n := de.Name(); strings.HasPrefix(n, "xvmview") && strings.HasSuffix(n, ".1") && de.Type().IsRegular() {
			names = append(names, n)
		}
	}
	return names, nil
}
