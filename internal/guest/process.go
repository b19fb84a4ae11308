package guest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// session opens a session and runs setup on it (which usually starts a
// command), bounded by ctx. x/crypto/ssh has no contexts: when ctx ends
// first, the session is closed as soon as the open completes.
func (c *Client) session(ctx context.Context, setup func(*ssh.Session) error) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.conn.NewSession()
		if err == nil {
			if err = setup(s); err != nil {
				s.Close()
				s = nil
			}
		}
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Run runs cmd, which is POSIX shell code (build it with Command and Quote),
// in /bin/sh on the guest whatever the user's login shell (see Portable), in
// a session of its own, with stdin copied to
// the command's standard input (nil: empty) and its output copied to stdout
// and stderr (nil: discarded). It returns when the command has exited and its
// output is copied. Use Run for short commands; programs that must not outlive
// the connection go through Start.
//
// It returns *ExitError for a non-zero exit (or a status outside 0..255,
// see ExitError). When ctx ends first the command
// is sent SIGKILL, the session is closed and the context's error returned
// (wrapped); the copy from stdin continues until stdin returns.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	stdout, stderr = serialise(stdout, stderr)
	s, err := c.session(ctx, func(s *ssh.Session) error {
		s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
		return s.Start(Portable(cmd))
	})
	if err != nil {
		return fmt.Errorf("start command on guest %s: %w", c.RemoteAddr(), err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		s.Close()
		if st, sig, ok := exitStatus(err); ok {
			if st == 0 {
				return nil
			}
			return newExitError(st, sig)
		}
		return fmt.Errorf("command on guest %s: %w", c.RemoteAddr(), err)
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		return fmt.Errorf("command on guest %s: %w", c.RemoteAddr(), ctx.Err())
	}
}

// exitStatus interprets a Session.Wait error: ok is false when the session
// ended without an exit status (connection lost).
func exitStatus(err error) (status int, signal string, ok bool) {
	if err == nil {
		return 0, "", true
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), ee.Signal(), true
	}
	return -1, "", false
}

// ProcSpec says what Start runs on the guest.
type ProcSpec struct {
	// Env holds "NAME=value" additions to the program's environment, e.g.
	// DISPLAY. Not for secrets: they are part of the command line, which
	// the guest's process list shows.
	Env    []string
	Argv   []string // program and arguments, looked up in the guest's PATH
	Stdout io.Writer
	Stderr io.Writer
	// Grace is how long the program and what it started get at most
	// between SIGTERM and SIGKILL on the guest; 0 means 2 s. Whole seconds,
	// at least 1.
	Grace time.Duration
}

// Process is a program started on the guest by Start.
type Process struct {
	s      *ssh.Session
	stdin  io.WriteCloser
	grace  time.Duration
	done   chan struct{}
	status int
	err    error

	closeOnce sync.Once
	closeErr  error
}

// watchdog is the guest-side wrapper, run as
// `sh -c WATCHDOG sh GRACE MARK ARGV...`. sshd made the login shell a session
// leader and the shell execs sh, so this shell's pid is the process group id
// and "kill 0" reaches everything the program started in its group.
//
//   - fd 3 keeps the channel's stdin; the program gets /dev/null.
//   - The program runs with XVMVIEW_PROC=MARK in its environment, a value
//     unique to this Start, and passes it on to everything it starts. What
//     leaves the process group (setsid, daemons: xterm's shell, a browser's
//     helpers) still carries it, and sweep finds it in /proc/PID/environ:
//     every kill below reaches those too. Only a process that clears its
//     environment escapes. The wrapper and its helpers do not carry the
//     mark, so sweep never hits them.
//   - The program starts before the trap that ignores TERM, so it keeps the default TERM
//     action; the wrapper and its helpers ignore TERM and survive the group
//     kill until the final SIGKILL.
//   - Without Linux's /proc (BSD guests) sweep and marked find nothing:
//     the group kill still works, and a notice on stderr says that what
//     left the group is not ended.
//   - The watchdog reads the channel until EOF (we closed stdin, or sshd
//     closed it because the connection dropped or the session ended), then
//     ends the group and the marked (end: TERM; wait until no marked
//     process is left, at most the grace; KILL). The wait stops early so
//     that a teardown of programs that end on TERM, the usual case, takes
//     a tenth of a second rather than the whole grace. The grace is kept
//     by the clock (/proc/uptime, centiseconds), not only by counting the
//     tenth-second sleeps, which take longer on a loaded guest. A line
//     "tenths N" (0..99) before the EOF shortens the grace to N tenths of
//     a second: Close sends it when its caller has less time than the
//     grace (after a signal the whole teardown has 1.5 s).
//   - When the program exits by itself, a reaper does the same to whatever
//     it left behind and the wrapper exits with the program's status at once.
//     Helpers send their output to /dev/null so they don't hold the channel.
const watchdog = `tenths=$(($1 * 10)) mark=$2
shift 2
[ -r /proc/self/environ ] || echo "xvmview: the guest has no Linux /proc: programs that leave their process group are not ended at teardown" >&2
sweep() {
	for f in $(grep -lxzF "XVMVIEW_PROC=$mark" /proc/[0-9]*/environ 2>/dev/null); do
		p=${f#/proc/}
		kill -"$1" "${p%/environ}" 2>/dev/null
	done
}
marked() { grep -qxzF "XVMVIEW_PROC=$mark" /proc/[0-9]*/environ 2>/dev/null; }
cs() { read -r up _ </proc/uptime && echo $((${up%.*} * 100 + 1${up#*.} - 100)); }
end() {
	kill -TERM 0; sweep TERM
	i=0 deadline=$(($(cs 2>/dev/null || echo 0) + tenths * 10))
	while [ "$i" -lt "$tenths" ] && marked; do
		sleep 0.1 2>/dev/null || { sleep 1; i=$((i + 9)); }
		i=$((i + 1))
		now=$(cs 2>/dev/null) && [ "$now" -ge "$deadline" ] && break
	done
	sweep KILL; kill -KILL 0
}
exec 3<&0 </dev/null
XVMVIEW_PROC=$mark "$@" 3<&- &
app=$!
trap '' TERM
{ while IFS= read -r l; do case $l in "tenths "[0-9] | "tenths "[0-9][0-9]) tenths=${l#tenths } ;; esac; done; end; } <&3 >/dev/null 2>&1 &
exec 3<&-
wait "$app"
st=$?
end </dev/null >/dev/null 2>&1 &
exit "$st"`

// StartCommand returns the shell code Start sends for spec, with mark as
// the program's XVMVIEW_PROC value (newMark). Env values appear in it; keep
// secrets out of Env.
func StartCommand(spec ProcSpec, mark string) (string, error) {
	if len(spec.Argv) == 0 {
		return "", errors.New("empty command")
	}
	argv := append([]string{"sh", "-c", watchdog, "sh", strconv.Itoa(graceSeconds(spec.Grace)), mark}, spec.Argv...)
	cmd, err := Command(spec.Env, argv)
	if err != nil {
		return "", err
	}
	return "exec " + cmd, nil
}

// newMark returns a fresh XVMVIEW_PROC value: 16 random hex digits.
func newMark() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// closeMargin is what Close keeps of its caller's time for the session to
// report its end after the guest's grace is over.
const closeMargin = 500 * time.Millisecond

func graceSeconds(d time.Duration) int {
	if d <= 0 {
		return 2
	}
	return max(1, int((d+time.Second-1)/time.Second))
}

// Start runs spec.Argv on the guest so that it never outlives the session:
// when the program exits, when Close is called, or when the connection
// drops, the guest kills the program's whole process group and what it
// started (SIGTERM, then SIGKILL once they are gone or spec.Grace is up). Output is streamed to spec.Stdout and
// spec.Stderr (nil: discarded); the program's stdin is /dev/null. ctx bounds
// only the start; end the program with Close.
//
// It returns an error for an invalid spec (see Command) and when the session
// cannot be opened or the command not sent.
func (c *Client) Start(ctx context.Context, spec ProcSpec) (*Process, error) {
	cmd, err := StartCommand(spec, newMark())
	if err != nil {
		return nil, fmt.Errorf("start %q on guest: %w", firstArg(spec.Argv), err)
	}
	p := &Process{grace: time.Duration(graceSeconds(spec.Grace)) * time.Second, done: make(chan struct{})}
	stdout, stderr := serialise(spec.Stdout, spec.Stderr)
	s, err := c.session(ctx, func(s *ssh.Session) error {
		s.Stdout, s.Stderr = stdout, stderr
		in, err := s.StdinPipe()
		if err != nil {
			return err
		}
		p.stdin = in
		return s.Start(Portable(cmd))
	})
	if err != nil {
		return nil, fmt.Errorf("start %q on guest %s: %w", spec.Argv[0], c.RemoteAddr(), err)
	}
	p.s = s
	go func() {
		err := s.Wait()
		st, sig, ok := exitStatus(err)
		p.status = st
		if !ok {
			p.err = fmt.Errorf("session of %q on guest %s ended without an exit status (connection lost?): %w", spec.Argv[0], c.RemoteAddr(), err)
		} else if ee := newExitError(st, sig); ee.Claimed != 0 {
			p.status, p.err = ee.Status, ee
		}
		s.Close()
		close(p.done)
	}()
	return p, nil
}

func firstArg(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}

// Done is closed when the program's session has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the session to end and returns the program's exit status
// (128+N when it was killed by signal N). err is non-nil, and status -1,
// when the session ended without a status, e.g. because the connection was
// lost. When the guest reported a status outside 0..255, which no program
// can have, status is 1 and err an *ExitError holding what it reported.
func (p *Process) Wait() (status int, err error) {
	<-p.done
	return p.status, p.err
}

// Close ends the program: it closes the program's session input, which makes
// the guest kill the process group, and waits for the session to end (at
// most the grace period plus a little, bounded by ctx). When ctx ends
// sooner than the grace would, the guest is told to use what is left of it
// (less closeMargin) as the grace. If the session does not end, Close sends
// SIGKILL, closes the session and returns an error. Close is idempotent and
// returns the first call's result.
func (p *Process) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		grace := p.grace
		if dl, ok := ctx.Deadline(); ok {
			grace = min(grace, time.Until(dl)-closeMargin)
		}
		go func() {
			// A guest that does not read its input must not hold this up:
			// the write ends when the session is closed below.
			if grace < p.grace {
				fmt.Fprintf(p.stdin, "tenths %d\n", max(0, int(grace/(100*time.Millisecond))))
			}
			p.stdin.Close()
		}()
		t := time.NewTimer(p.grace + 3*time.Second)
		defer t.Stop()
		select {
		case <-p.done:
			return
		case <-t.C:
		case <-ctx.Done():
		}
		select {
		case <-p.done:
			return
		default:
		}
		p.s.Signal(ssh.SIGKILL)
		p.s.Close()
		p.closeErr = errors.New("guest program did not end after its input was closed: sent SIGKILL and closed the session; processes may be left on the guest")
	})
	return p.closeErr
}

// serialise makes one writer safe for the two output copies when stdout and
// stderr are the same, as exec.Cmd does.
func serialise(stdout, stderr io.Writer) (io.Writer, io.Writer) {
	if stdout == nil || !sameWriter(stdout, stderr) {
		return stdout, stderr
	}
	w := &lockedWriter{w: stdout}
	return w, w
}

func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
