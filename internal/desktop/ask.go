package desktop

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// ErrCannotAsk means the user cannot be asked this way: no terminal and no
// askpass allowed (SSH_ASKPASS_REQUIRE=never, or no DISPLAY), or a host key
// question while a terminal is there (`xvmview trust` answers those).
var ErrCannotAsk = errors.New("cannot ask the user")

// DeclinedError means the user cancelled the question (askpass exited
// non-zero, or the terminal prompt was ended).
type DeclinedError struct{ Program string }

func (e *DeclinedError) Error() string {
	if e.Program == "" {
		return "the user gave no answer"
	}
	return fmt.Sprintf("the user cancelled %s", e.Program)
}

// DefaultAskpass is OpenSSH's askpass program when SSH_ASKPASS is unset.
const DefaultAskpass = "/usr/bin/ssh-askpass"

// maxAnswer caps what is read from an askpass program.
const maxAnswer = 8 << 10

// Asker asks the user questions during a launch as OpenSSH's ssh does: on
// the terminal (/dev/tty) when stdin is one, through the askpass program
// otherwise, following SSH_ASKPASS, SSH_ASKPASS_REQUIRE (never, prefer,
// force) and DISPLAY/WAYLAND_DISPLAY. Answers are never written anywhere.
type Asker struct {
	// StdinTerminal reports whether stdin is a terminal.
	StdinTerminal bool
	// Getenv reads the environment (os.Getenv).
	Getenv func(string) string
	// Environ is the askpass program's environment (nil: os.Environ).
	Environ func() []string
	// TTY is the terminal to prompt on; "" means /dev/tty.
	TTY string
}

// useAskpass decides as OpenSSH's read_passphrase does for ssh's
// passphrase prompts: askpass when forced, when preferred and a display is
// there, or when stdin is no terminal; allowed only with a display unless
// forced, never with "never".
func (a *Asker) useAskpass() (use, allowed bool) {
	allowed = a.Getenv("DISPLAY") != "" || a.Getenv("WAYLAND_DISPLAY") != ""
	switch strings.ToLower(a.Getenv("SSH_ASKPASS_REQUIRE")) {
	case "force":
		return true, true
	case "prefer":
		use = allowed
	case "never":
		allowed = false
	}
	return use || !a.StdinTerminal, allowed
}

func (a *Asker) askpassProgram() string {
	if p := a.Getenv("SSH_ASKPASS"); p != "" {
		return p
	}
	return DefaultAskpass
}

// Passphrase asks for a secret with prompt. The caller zeroes the result.
// It returns *DeclinedError when the user cancels and ErrCannotAsk (wrapped)
// when there is no way to ask.
func (a *Asker) Passphrase(ctx context.Context, prompt string) ([]byte, error) {
	use, allowed := a.useAskpass()
	if use {
		if !allowed {
			return nil, fmt.Errorf("%w: no terminal, and no DISPLAY for an askpass program (or SSH_ASKPASS_REQUIRE=never)", ErrCannotAsk)
		}
		return a.askpass(ctx, prompt)
	}
	return a.terminal(ctx, prompt)
}

// Confirm asks a yes/no question (an unknown host key) through askpass as
// OpenSSH's ssh does for host keys (sshconnect.c confirm): the program
// shows the question with an entry, and only a typed "yes" (any case,
// blanks around it ignored) from a program that exits 0 is a yes; an empty
// answer, "no", anything else or a cancel is a no. Not
// SSH_ASKPASS_PROMPT=confirm: that is ssh-agent's permission question,
// where an empty answer counts as yes, and an askpass without a confirm
// mode (Debian's ssh-askpass) would then accept a key on a bare Enter.
// With a terminal on stdin it returns ErrCannotAsk unless
// SSH_ASKPASS_REQUIRE=force: there the launch refuses the key and
// `xvmview trust` asks.
func (a *Asker) Confirm(ctx context.Context, prompt string) (bool, error) {
	use, allowed := a.useAskpass()
	if a.StdinTerminal && !strings.EqualFold(a.Getenv("SSH_ASKPASS_REQUIRE"), "force") {
		use = false
	}
	if !use || !allowed {
		return false, ErrCannotAsk
	}
	ans, err := a.askpass(ctx, prompt)
	if err != nil {
		var de *DeclinedError
		if errors.As(err, &de) {
			return false, nil
		}
		return false, err
	}
	defer clear(ans)
	word, _, _ := strings.Cut(strings.TrimLeft(string(ans), " \t"), " ")
	word, _, _ = strings.Cut(word, "\t")
	return strings.EqualFold(word, "yes"), nil
}

// askpass runs the askpass program with prompt as its argument and returns
// its first output line.
func (a *Asker) askpass(ctx context.Context, prompt string) ([]byte, error) {
	prog := a.askpassProgram()
	cmd := exec.CommandContext(ctx, prog, prompt)
	if a.Environ != nil {
		cmd.Env = a.Environ()
	} else {
		cmd.Env = os.Environ()
	}
	for _, k := range []string{"DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY"} {
		if v := a.Getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	// Run ends when the program has exited (killed when ctx ends) and its
	// output is in, or askpassDrain later: something it left running in
	// the background may hold its stdout open.
	out := &answerBuffer{b: make([]byte, 0, maxAnswer)}
	cmd.Stdout = out
	cmd.WaitDelay = askpassDrain
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: askpass program %s not found (set SSH_ASKPASS, e.g. to ssh-askpass from the ssh-askpass package)", ErrCannotAsk, prog)
		}
		return nil, fmt.Errorf("askpass %s: %w", prog, err)
	}
	werr := cmd.Wait()
	if errors.Is(werr, exec.ErrWaitDelay) {
		werr = nil // it exited 0; what it wrote before is the answer
	}
	buf := out.b
	if ctx.Err() != nil {
		clear(buf)
		return nil, ctx.Err()
	}
	if werr != nil {
		clear(buf)
		return nil, &DeclinedError{Program: prog}
	}
	line := buf
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		clear(line[i:])
		line = line[:i]
	}
	return line, nil
}

// askpassDrain is how long the askpass program's output may stay open after
// it exited.
const askpassDrain = time.Second

// answerBuffer keeps the first maxAnswer bytes written to it in one
// allocation (no copies of a passphrase left behind by growing) and drops
// the rest.
type answerBuffer struct{ b []byte }

func (a *answerBuffer) Write(p []byte) (int, error) {
	n := min(len(p), cap(a.b)-len(a.b))
	a.b = append(a.b, p[:n]...)
	return len(p), nil
}

// terminal reads a secret from the terminal without echo, until a line
// end, EOF (declined) or the end of ctx (a signal, the start's deadline).
func (a *Asker) terminal(ctx context.Context, prompt string) ([]byte, error) {
	path := a.TTY
	if path == "" {
		path = "/dev/tty"
	}
	// Never tty.Fd(): that makes reads blocking, past ctx's reach.
	tty, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrCannotAsk, path, err)
	}
	defer tty.Close()
	rc, err := tty.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCannotAsk, path, err)
	}
	termios := func(req uint, t *unix.Termios) (old *unix.Termios, err error) {
		cerr := rc.Control(func(fd uintptr) {
			if t == nil {
				old, err = unix.IoctlGetTermios(int(fd), unix.TCGETS)
			} else {
				err = unix.IoctlSetTermios(int(fd), req, t)
			}
		})
		return old, cmp.Or(cerr, err)
	}
	// Echo goes off before the prompt shows, as in OpenSSH's
	// readpassphrase: what is typed right after the prompt is never shown.
	old, err := termios(unix.TCGETS, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not a terminal: %v", ErrCannotAsk, path, err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	if _, err := termios(unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("turn off echo on %s: %w", path, err)
	}
	defer func() { _, _ = termios(unix.TCSETS, old) }()
	if _, err := io.WriteString(tty, prompt); err != nil {
		return nil, fmt.Errorf("prompt on %s: %w", path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = tty.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	b, err := readLine(tty)
	_, _ = io.WriteString(tty, "\n")
	if ctx.Err() != nil {
		clear(b)
		return nil, ctx.Err()
	}
	if err != nil {
		clear(b)
		if errors.Is(err, io.EOF) {
			return nil, &DeclinedError{}
		}
		return nil, fmt.Errorf("read passphrase from %s: %w", path, err)
	}
	return b, nil
}

// readLine reads one line (the terminal in canonical mode edits it) into
// one buffer of maxAnswer bytes, without its line end; io.EOF when the
// input ended before one.
func readLine(r io.Reader) ([]byte, error) {
	buf := make([]byte, maxAnswer)
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		if i := bytes.IndexByte(buf[n:n+m], '\n'); i >= 0 {
			clear(buf[n+i : n+m])
			return bytes.TrimSuffix(buf[:n+i], []byte("\r")), nil
		}
		n += m
		if err != nil {
			clear(buf[:n])
			return nil, err
		}
	}
	clear(buf)
	return nil, fmt.Errorf("an answer longer than %d bytes", maxAnswer)
}

// Terminal reports whether f (an io.Reader or io.Writer) is an *os.File on
// a terminal (/dev/null is not one).
func Terminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}
