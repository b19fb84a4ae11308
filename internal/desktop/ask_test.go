package desktop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	yesBlanks, _ := fakeAskpass(t, " \tYeS\t ", 0)
	yesMore, _ := fakeAskpass(t, "yesno", 0)
	y, _ := fakeAskpass(t, "y", 0)
	refuse, _ := fakeAskpass(t, "yes", 1)
	for _, tt := range []struct {
		name     string
		terminal bool
		env      map[string]string
		want     bool
		wantErr  error
	}{
		{"yes", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": yes}, true, nil},
		{"yes with blanks", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": yesBlanks}, true, nil},
		{"ok without words: no", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": empty}, false, nil},
		{"yes and more: no", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": yesMore}, false, nil},
		{"y: no", false, map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": y}, false, nil},
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
	if err != nil || !strings.Contains(string(b), "Are you sure (yes/no)?|\n") || strings.Contains(string(b), "|confirm") {
		t.Errorf("askpass saw %q (%v), want the question and no SSH_ASKPASS_PROMPT (a typed yes, as ssh asks about host keys)", b, err)
	}
}

// openPTY returns a pseudo-terminal's controlling side and the path of its
// terminal side.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// TestAskerTerminal: with a terminal on stdin the passphrase is read from
// the terminal without echo, the prompt shown there; host key questions are
// left to `xvmview trust`.
func TestAskerTerminal(t *testing.T) {
	m, tty := openPTY(t)
	a := &Asker{StdinTerminal: true, Getenv: env(map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": "/nonexistent"}), TTY: tty}
	shown := make(chan string, 1)
	go func() {
		// Read the prompt, then type the passphrase.
		var seen []byte
		buf := make([]byte, 256)
		for !strings.Contains(string(seen), "passphrase: ") {
			n, err := m.Read(buf)
			if err != nil {
				break
			}
			seen = append(seen, buf[:n]...)
		}
		_, _ = m.Write([]byte("tty secret\n"))
		n, _ := m.Read(buf) // what the terminal shows after the answer: no echo
		shown <- string(seen) + string(buf[:n])
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := a.Passphrase(ctx, "Enter passphrase: ")
	if err != nil || string(got) != "tty secret" {
		t.Fatalf("Passphrase = %q, %v; want the typed passphrase", got, err)
	}
	select {
	case s := <-shown:
		if strings.Contains(s, "tty secret") {
			t.Errorf("the terminal echoed the passphrase: %q", s)
		}
	case <-ctx.Done():
		t.Fatal("no prompt on the terminal")
	}
	if ok, err := a.Confirm(ctx, "trust?"); ok || !errors.Is(err, ErrCannotAsk) {
		t.Errorf("Confirm on a terminal = %v, %v; want ErrCannotAsk", ok, err)
	}
}

// TestAskerAskpassLeavesChild: an askpass program that answers, leaves a
// child holding its stdout open and exits: the answer counts, and neither
// it nor the end of ctx waits for that child.
func TestAskerAskpassLeavesChild(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "askpass")
	script := "#!/bin/sh\nprintf 'pass\\n'\nsleep 60 &\necho $! >> " + dir + "/child\n[ \"$SSH_ASKPASS_REQUIRE\" = force ] && sleep 60\nexit 0\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := os.ReadFile(filepath.Join(dir, "child"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	a := &Asker{Getenv: env(map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": prog})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	got, err := a.Passphrase(ctx, "pass?")
	if err != nil || string(got) != "pass" {
		t.Errorf("Passphrase = %q, %v; want \"pass\"", got, err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Passphrase took %s: it waited for the askpass program's child", d)
	}
	// A program still running when ctx ends: killed, its child ignored.
	a = &Asker{Getenv: env(map[string]string{"DISPLAY": ":0", "SSH_ASKPASS": prog, "SSH_ASKPASS_REQUIRE": "force"})}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	start = time.Now()
	if _, err := a.Passphrase(ctx2, "pass?"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Passphrase after ctx ended = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Passphrase took %s after its ctx ended", d)
	}
}

// TestAskerTerminalCancel: the end of ctx (a signal, the start's deadline)
// ends a passphrase prompt on the terminal nobody answers, and echo is on
// again.
func TestAskerTerminalCancel(t *testing.T) {
	m, tty := openPTY(t)
	a := &Asker{StdinTerminal: true, Getenv: env(map[string]string{}), TTY: tty}
	go func() { _, _ = io.Copy(io.Discard, m) }() // the prompt
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Passphrase(ctx, "Enter passphrase: ")
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Passphrase = %v, want the context's error", err)
		}
	case <-time.After(10 * time.Second):
		_, _ = m.Write([]byte("\n"))
		t.Fatal("the prompt still waits 10 s after its ctx ended")
	}
	f, err := os.OpenFile(tty, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil || st.Lflag&unix.ECHO == 0 {
		t.Errorf("echo is off after the prompt ended (%v)", err)
	}
}
