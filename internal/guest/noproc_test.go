package guest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/xvmview/xvmview/internal/testguest"
)

// TestWatchdogWithoutProc runs Start's guest-side wrapper where /proc is
// empty, as on a BSD guest: the program runs and its exit status comes
// through, and a notice on stderr says that escaped processes are not
// ended, instead of a failure. (A mount namespace of its own with a tmpfs
// over /proc; needs root.)
func TestWatchdogWithoutProc(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		testguest.Missing(t, "root and unshare", "run as root with util-linux installed")
	}
	cmd, err := StartCommand(ProcSpec{Argv: []string{"sh", "-c", "echo out; exit 4"}}, newMark())
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none /proc && eval "$1"`, "sh", cmd)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	// As sshd does: a session of its own (the wrapper's "kill 0" ends
	// its group), and the channel's input open while the program runs.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c.Stdin = in
	err = c.Run()
	in.Close()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 4 {
		t.Fatalf("exit %v, want status 4; stderr: %s", err, stderr.String())
	}
	if stdout.String() != "out\n" {
		t.Errorf("stdout = %q, want the program's", stdout.String())
	}
	if !strings.Contains(stderr.String(), "no Linux /proc") {
		t.Errorf("stderr = %q, want the notice", stderr.String())
	}
}
