package testguest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// TB is the subset of testing.TB this package uses, so that it does not
// import "testing". *testing.T and *testing.B satisfy it.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// PrereqError reports a missing prerequisite: not root, a program not
// installed, no permission to make network namespaces. Start and StartXvfb
// skip the test on it, except when CI=true, where they fail it.
type PrereqError struct {
	What string // what is missing, e.g. "/usr/sbin/sshd"
	Hint string // what to do, e.g. "install the openssh-server package"
}

func (e *PrereqError) Error() string {
	if e.Hint == "" {
		return "missing prerequisite: " + e.What
	}
	return "missing prerequisite: " + e.What + "; " + e.Hint
}

// Start is New for tests and benchmarks: it bounds start-up by startTimeout,
// registers Close with tb.Cleanup (a failed Close fails the test: something
// was left behind), and logs sshd's output when the test has failed. On a
// *PrereqError it calls tb.Skipf, or tb.Fatalf when CI=true; on any other
// error tb.Fatalf. It returns nil only if those return.
func Start(tb TB, opts Options) *Guest {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	g, err := New(ctx, opts)
	if err != nil {
		SkipOrFail(tb, err)
		return nil
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("sshd output of test guest %s (%s):\n%s", g.Alias, g.Addr, g.SSHDLog())
		}
		if err := g.Close(); err != nil {
			tb.Fatalf("%v", err)
		}
	})
	return g
}

// StartXvfb is NewXvfb for tests and benchmarks: it bounds start-up by
// startTimeout, registers Close with tb.Cleanup, and logs Xvfb's output when
// the test has failed. Errors are handled as in Start.
func StartXvfb(tb TB, opts XvfbOptions) *Xvfb {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	x, err := NewXvfb(ctx, opts)
	if err != nil {
		SkipOrFail(tb, err)
		return nil
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("Xvfb %s output:\n%s", x.Display, x.Log())
		}
		if err := x.Close(); err != nil {
			tb.Fatalf("%v", err)
		}
	})
	return x
}

// CI reports whether the tests run in CI (CI=true), where every
// prerequisite is installed and a missing one is a failure, not a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing is the one way a test meets a missing prerequisite: it skips the
// test, or fails it when CI=true (CI installs everything: a skip there would
// hide a test that never ran). what and hint are as in PrereqError.
func Missing(tb TB, what, hint string) {
	tb.Helper()
	SkipOrFail(tb, &PrereqError{What: what, Hint: hint})
}

// NeedProgram returns the path of program, looked up in PATH, or calls
// Missing naming the Debian package pkg that provides it.
func NeedProgram(tb TB, program, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		Missing(tb, "program "+program, "install the "+pkg+" package")
	}
	return p
}

// SkipOrFail skips the test for a *PrereqError in err's chain, or fails it
// when CI=true, as Missing does; any other error fails the test.
func SkipOrFail(tb TB, err error) {
	tb.Helper()
	var pe *PrereqError
	if errors.As(err, &pe) && !CI() {
		tb.Skipf("%v", err)
		return
	}
	tb.Fatalf("%v", err)
}

// Reachable makes dir and its parents below the temporary directory
// searchable by everyone (0755), so that the guest user can run what a test
// put there: t.TempDir's parent is private to the test's user.
func Reachable(tb TB, dir string) {
	tb.Helper()
	stop := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); d != "/" && d != stop; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatalf("make %s reachable: %v", d, err)
		}
	}
}
