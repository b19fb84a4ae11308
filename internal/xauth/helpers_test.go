package xauth

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/testguest"
)

// requireXauth returns the path of the real xauth(1). It skips the test when
// xauth is missing, except under CI=true, where it fails.
func requireXauth(t testing.TB) string {
	t.Helper()
	return testguest.NeedProgram(t, "xauth", "xauth")
}

// xauthCmd builds an xauth command whose stderr is logged only if the test
// fails.
func xauthCmd(ctx context.Context, t testing.TB, stdin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, requireXauth(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("xauth %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return cmd
}

// runXauth runs xauth to completion and returns its stdout.
func runXauth(t testing.TB, stdin string, args ...string) []byte {
	t.Helper()
	out, err := xauthCmd(t.Context(), t, stdin, args...).Output()
	if err != nil {
		t.Fatalf("xauth %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// nlist returns `xauth -f path nlist`.
func nlist(t testing.TB, path string) string {
	t.Helper()
	return string(runXauth(t, "", "-f", path, "nlist"))
}

func mustReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWriteFile(t testing.TB, path string, entries []Entry) []byte {
	t.Helper()
	if err := WriteFile(path, entries); err != nil {
		t.Fatal(err)
	}
	return mustReadFile(t, path)
}

// tempAuth returns the path of a not yet existing file in a fresh directory.
func tempAuth(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "Xauthority")
}

func cookieN(n byte) Cookie {
	var c Cookie
	for i := range c {
		c[i] = n + byte(i)
	}
	return c
}

func entriesEqual(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
