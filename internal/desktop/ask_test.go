package desktop

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAskpass writes an askpass program that records its argument and
// SSH_ASKPASS_PROMPT in log, prints answer and exits with status.
func fakeAskpass(t *testing.T, answer string, status int) (prog, log string) {
	t.Helper()
	dir := t.TempDir()
	prog, log = filepath.Join(dir, "askpass"), filepath.Join(dir, "log")
	script := "#!/bin/sh\nprintf '%s|%s\\n' \"$1\" \"${SSH_ASKPASS_PROMPT-}\" >> " + log + "\nprintf '%s\\n' '" + answer + "'\nexit " + string(rune('0'+status)) + "\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return prog, log
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestAskerPassphrase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	right, log := fakeAskpass(t, "pass word", 0)
	refuse, _ := fakeAskpass(t, "", 1)
	for _, tt := range []struct {
		name     string
		terminal bool
		env      map[string]string
		want     string
		wantErr  error
	}{
		{"no terminal: askpass", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": right}, "pass word", nil},
		{"wayland display", false, map[string]string{"WAYLAND_DISPLAY": "w", "SSH_ASKPASS": right}, "pass word", nil},
		{"force with a terminal", true, map[string]string{"SSH_ASKPASS_REQUIRE": "force", "SSH_ASKPASS": right}, "pass word", nil},
		{"prefer with a terminal and display", true, map[string]string{"SSH_ASKPASS_REQUIRE": "prefer", "DISPLAY": ":0", "SSH_ASKPASS": right}, "pass word", nil},
		{"refused", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": refuse}, "", &DeclinedError{}},
		{"never", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": right, "SSH_ASKPASS_REQUIRE": "never"}, "", ErrCannotAsk},
		{"no display", false, map[string]string{"SSH_ASKPASS": right}, "", ErrCannotAsk},
		{"askpass missing", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": "/nonexistent/askpass"}, "", ErrCannotAsk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &Asker{StdinTerminal: tt.terminal, Getenv: env(tt.env), TTY: "/nonexistent/tty"}
			got, err := a.Passphrase(ctx, "Enter passphrase for key '/k': ")
			var de *DeclinedError
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Passphrase: %v", err)
			case errors.As(tt.wantErr, &de) && !errors.As(err, &de):
				t.Fatalf("Passphrase = %v, want *DeclinedError", err)
			case tt.wantErr == ErrCannotAsk && !errors.Is(err, ErrCannotAsk):
				t.Fatalf("Passphrase = %v, want ErrCannotAsk", err)
			}
			if string(got) != tt.want {
				t.Errorf("Passphrase = %q, want %q", got, tt.want)
			}
		})
	}
	b, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(b), "Enter passphrase for key '/k': |\n") {
		t.Errorf("askpass saw %q (%v), want the prompt as its argument and no SSH_ASKPASS_PROMPT", b, err)
	}
}

func TestAskerConfirm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	yes, log := fakeAskpass(t, "yes", 0)
	empty, _ := fakeAskpass(t, "", 0)
	no, _ := fakeAskpass(t, "no", 0)
	refuse, _ := fakeAskpass(t, "yes", 1)
	for _, tt := range []struct {
		name     string
		terminal bool
		env      map[string]string
		want     bool
		wantErr  error
	}{
		{"yes", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": yes}, true, nil},
		{"ok without words", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": empty}, true, nil},
		{"no", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": no}, false, nil},
		{"refused", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": refuse}, false, nil},
		{"terminal: xvmview trust asks", true, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": yes}, false, ErrCannotAsk},
		{"terminal, forced", true, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": yes, "SSH_ASKPASS_REQUIRE": "force"}, true, nil},
		{"no display", false, map[string]string{"SSH_ASKPASS": yes}, false, ErrCannotAsk},
		{"never", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": yes, "SSH_ASKPASS_REQUIRE": "never"}, false, ErrCannotAsk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &Asker{StdinTerminal: tt.terminal, Getenv: env(tt.env)}
			got, err := a.Confirm(ctx, "Are you sure (yes/no)?")
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Confirm = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	b, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(b), "Are you sure (yes/no)?|confirm\n") {
		t.Errorf("askpass saw %q (%v), want the question and SSH_ASKPASS_PROMPT=confirm", b, err)
	}
}
