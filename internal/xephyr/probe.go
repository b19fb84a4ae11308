package xephyr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// BrokenError reports a Xephyr that is installed but does not start (a
// missing library, a broken install).
type BrokenError struct {
	Path   string // the binary
	Output string // the first line it wrote, if any
	Err    error  // how it ended, when not by printing its usage
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("%s does not start: %s", e.Path, cmp.Or(e.Output, fmt.Sprint(e.Err)))
}

func (e *BrokenError) Unwrap() error { return e.Err }

var xorgVersion = regexp.MustCompile(`X\.Org X Server (\d+(?:\.\d+)+)`)

// Probe finds the Xephyr binary (bin; "" = Xephyr from PATH) and proves
// that it starts, without a display: Xephyr (a kdrive server) has no
// -version, so it runs -help, which loads its libraries, prints the usage
// and exits 1. It returns the binary's path and its version: the X server
// version when the build prints it, else the Debian package's, else
// "version unknown".
//
// It returns *NotFoundError when the binary is missing and *BrokenError
// when it does not print its usage.
func Probe(ctx context.Context, bin string) (path, version string, err error) {
	bin = cmp.Or(bin, "Xephyr")
	path, err = exec.LookPath(bin)
	if err != nil {
		return "", "", &NotFoundError{Program: bin, Package: "xserver-xephyr", Err: err}
	}
	out, err := exec.CommandContext(ctx, path, "-help").CombinedOutput()
	var ee *exec.ExitError
	if (err != nil && !errors.As(err, &ee)) || !strings.Contains(string(out), "Xephyr Option Usage") {
		if err == nil {
			err = errors.New("it did not print its usage")
		}
		return path, "", &BrokenError{Path: path, Output: firstLine(out), Err: err}
	}
	if m := xorgVersion.FindSubmatch(out); m != nil {
		return path, "X.Org X Server " + string(m[1]), nil
	}
	if v, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", "xserver-xephyr").Output(); err == nil && len(v) > 0 {
		return path, "xserver-xephyr " + firstLine(v), nil
	}
	return path, "version unknown", nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
