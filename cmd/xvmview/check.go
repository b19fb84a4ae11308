package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xvmview/xvmview/internal/desktop"
	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/session"
)

func (c *cli) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check PROFILE",
		Short: "Check everything a profile needs, one line per check",
		Long: `Check tests, in order, what 'xvmview run PROFILE' needs: Xephyr, the host display,
the profile itself and, for a guest, the ssh settings in effect (with the file and line
each came from, and each ProxyJump hop), which identity files need a passphrase, that the
guest answers, that its host key is known, that the login works, the guest user's login
shell, and that xauth and the profile's commands are installed there. For a local profile
it looks for the commands here. Each check prints one line; a failed one is followed by
an indented hint, and checks that depend on it are skipped. A session whose launcher
died and whose cleanup failed 3 times (see 'xvmview ps') is reported first, one FAIL
line each.

On a terminal the lines start with ✓, ✗ or -; otherwise with ok, FAIL or skip, so
that 'xvmview check web | grep FAIL' finds the failures. The exit status is 1 when
any check failed, 0 otherwise.`,
		Example: `  xvmview check web
  xvmview check web | grep -A1 FAIL`,
		Args:              exactlyOne("check needs a profile name (see 'xvmview list')"),
		ValidArgsFunction: c.completeProfiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.check(cmd.Context(), args[0])
		},
	}
}

func (c *cli) check(ctx context.Context, name string) error {
	if err := c.aboutProfile(name); err != nil {
		return err
	}
	k := newChecker(c.stdout)
	session.Check(ctx, name, session.CheckEnv{
		Dirs:        c.profileDirs(),
		Host:        session.HostDisplayFrom(c.env.Getenv),
		SSH:         c.sshConfig(),
		RuntimeRoot: c.runtimeRoot(),
		Ask:         c.asker(),
		CannotAsk:   desktop.ErrCannotAsk,
		Progress: func(r session.CheckResult) {
			facts := r.Facts
			if r.Status == session.StatusFail && facts == "" {
				facts = r.Err.Error()
			}
			hint := ""
			if r.Err != nil {
				hint = c.hint(r.Err)
			}
			k.line(r.Status, r.Name, facts, r.Details, hint)
		},
	})
	return k.result()
}

// checkMarks are the line prefixes: symbols for people at a terminal, words
// for everything else (pipes, files, logs), where grep FAIL must work and
// a font may lack the symbols. Indexed by session.Status.
var checkMarks = map[bool][3]string{
	true:  {"✓", "✗", "-"},
	false: {"ok", "FAIL", "skip"},
}

// checker prints check lines and counts the outcomes.
type checker struct {
	w      io.Writer
	marks  [3]string
	counts [3]int
}

func newChecker(w io.Writer) *checker {
	return &checker{w: w, marks: checkMarks[desktop.Terminal(w)]}
}

// line prints one check. Facts, details and hint may quote bytes from the
// other end (an error with a ProxyCommand's stderr, where ssh -W prints a
// jump host's banner): each goes through guesttext, one line with no
// terminal escapes, as every error xvmview prints does.
func (k *checker) line(s session.Status, name, facts string, details []string, hint string) {
	k.counts[s]++
	fmt.Fprintf(k.w, "%-4s %s: %s\n", k.marks[s], name, guesttext.LineCap(facts, maxMessage))
	for _, d := range details {
		fmt.Fprintf(k.w, "       %s\n", guesttext.LineCap(d, maxMessage))
	}
	if hint != "" {
		for _, line := range strings.Split(hint, "\n") {
			fmt.Fprintf(k.w, "     hint: %s\n", guesttext.LineCap(line, maxMessage))
		}
	}
}

// checksFailedError ends a check run with failures (exit 1).
type checksFailedError struct{ failed, total int }

func (e checksFailedError) Error() string {
	return fmt.Sprintf("%d of %d checks failed", e.failed, e.total)
}

func (k *checker) result() error {
	ok, failed, skipped := k.counts[session.StatusOK], k.counts[session.StatusFail], k.counts[session.StatusSkip]
	total := ok + failed + skipped
	if failed > 0 {
		return checksFailedError{failed, total}
	}
	if skipped > 0 {
		fmt.Fprintf(k.w, "%d checks passed, %d skipped\n", ok, skipped)
		return nil
	}
	fmt.Fprintf(k.w, "all %d checks passed\n", total)
	return nil
}
