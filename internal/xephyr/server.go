package xephyr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/memcg"
	"github.com/xvmview/xvmview/internal/procfs"
)

// closeGrace is how long Close waits after SIGTERM before SIGKILL. Xephyr
// measured 1-3 s to exit on SIGTERM under load.
const closeGrace = 3 * time.Second

// waitDelay bounds how long the exit is held up by descendants (xkbcomp)
// that inherited Xephyr's stderr.
const waitDelay = time.Second

// NotFoundError reports that the Xephyr program is not installed (or
// Options.Binary does not exist).
type NotFoundError struct {
	Program string // what was looked up, e.g. "Xephyr"
	Package string // the Debian package that provides it, e.g. "xserver-xephyr"
	Err     error  // from exec.LookPath
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s not found (Debian package %s)", e.Program, e.Package)
}

func (e *NotFoundError) Unwrap() error { return e.Err }

// ExitError reports that Xephyr exited on its own: during Start (the host
// display is unreachable, bad flags) or later (from Server.Err).
type ExitError struct {
	Display int    // the nested display, -1 if Xephyr died before it had one
	Err     error  // the wait status as an *exec.ExitError, nil for exit status 0
	Stderr  string // the last lines of Xephyr's stderr, its own explanation
}

func (e *ExitError) Error() string {
	var b strings.Builder
	b.WriteString("Xephyr")
	if e.Display >= 0 {
		fmt.Fprintf(&b, " :%d", e.Display)
	} else {
		b.WriteString(" exited during startup")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	} else if e.Display >= 0 {
		b.WriteString(" exited")
	}
	if e.Stderr != "" {
		b.WriteString(": ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Server is a running Xephyr started by Start. Display and PID are
// read-only. Its methods are safe for concurrent use.
type Server struct {
	Display int // the nested display number N (":N")
	PID     int
	// Memory is the scope or cgroup that limits Xephyr's memory besides
	// RLIMIT_DATA (Options.Memcg); nil without Options.Memcg. Close
	// removes a cgroup leaf of its own once Xephyr has exited.
	Memory *memcg.Limit

	cmd      *exec.Cmd
	tail     *tailBuffer
	done     chan struct{}
	waitErr  error       // set before done is closed
	stopping atomic.Bool // Close sent a signal

	closeOnce sync.Once
	closeErr  error
}

// Start checks the options and the -auth file, starts Xephyr and waits until
// it writes its display number on -displayfd, which it does once it accepts
// clients. It never connects to the new display (with -terminate a probing
// client would end the server).
//
// ctx governs only the startup wait: when ctx ends first, Start stops
// Xephyr and returns an error wrapping ctx.Err(). Once Start returns, the
// Server runs until Close, a crash, or -terminate; call Close in every case.
//
// Errors: option errors from Args; an error naming AuthFile when it is
// missing, empty, not a regular file, or readable by group/others;
// *NotFoundError when the binary is missing; *ExitError (with Xephyr's
// stderr tail, e.g. "cannot open host display") when Xephyr dies before it
// is ready.
func Start(ctx context.Context, o Options) (*Server, error) {
	args, err := o.Args()
	if err != nil {
		return nil, err
	}
	if err := checkAuthFile(o.AuthFile); err != nil {
		return nil, err
	}
	bin := o.Binary
	if bin == "" {
		bin = "Xephyr"
	}
	path, err := Find(bin)
	if err != nil {
		return nil, err
	}

	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start Xephyr: make -displayfd pipe: %w", err)
	}
	defer r.Close()

	tail := &tailBuffer{max: 8 << 10}
	var out io.Writer = tail
	if o.Stderr != nil {
		out = teeWriter{tail, o.Stderr}
	}
	cmd := exec.Command(path, args...)
	cmd.Env = confinedEnv(o.Env)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.ExtraFiles = []*os.File{w} // fd 3 = displayFD
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl+C at the terminal reaches only the
		// launcher, which then tears down in order (guest first, Xephyr
		// last) instead of the nested display vanishing under the guest.
		Setpgid: true,
		// Pdeathsig: if the launcher is SIGKILLed (or crashes), the kernel
		// sends Xephyr SIGTERM so no orphan display stays on screen.
		// Linux sends it when the *thread* that forked exits, not the
		// process (golang/go#27505): startConfined forks from a thread it
		// holds until Xephyr has exited. Linux-only, like Xephyr here.
		Pdeathsig: syscall.SIGTERM,
	}
	done := make(chan struct{})
	if err := startConfined(cmd, done); err != nil {
		w.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &NotFoundError{Program: bin, Package: "xserver-xephyr", Err: err}
		}
		return nil, fmt.Errorf("start Xephyr %s: %w", path, err)
	}
	w.Close() // only Xephyr holds the write end now: EOF means it died

	s := &Server{Display: -1, PID: cmd.Process.Pid, cmd: cmd, tail: tail, done: done}
	go s.wait()
	// Before Xephyr accepts its first client (it announces that on
	// -displayfd, read below).
	if err := limitMemory(s.PID, o.MemoryLimit); err != nil {
		_ = s.Close()
		return nil, err
	}
	if o.Memcg != nil && o.MemoryLimit > 0 {
		c := *o.Memcg
		if c.Env == nil {
			c.Env = o.Env
		}
		s.Memory, err = memcg.Apply(ctx, s.PID, o.MemoryLimit, c)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("start Xephyr: %w", err)
		}
	}

	type line struct {
		s   string
		err error
	}
	lines := make(chan line, 1)
	go func() {
		l, err := bufio.NewReader(io.LimitReader(r, 64)).ReadString('\n')
		lines <- line{l, err}
	}()

	select {
	case l := <-lines:
		if l.err != nil {
			// Xephyr closed -displayfd without a number: it is dying. Let
			// it finish so its own exit status is reported.
			select {
			case <-s.done:
			case <-ctx.Done():
			case <-time.After(closeGrace):
			}
			_ = s.Close()
			return nil, s.startupError()
		}
		n, err := strconv.Atoi(strings.TrimSpace(l.s))
		if err != nil || n < 0 || n > 65535 {
			_ = s.Close()
			return nil, fmt.Errorf("start Xephyr: it wrote %q on -displayfd instead of a display number", l.s)
		}
		s.Display = n
		return s, nil
	case <-s.done:
		_ = s.Close() // removes its cgroup leaf
		return nil, s.startupError()
	case <-ctx.Done():
		_ = s.Close()
		return nil, fmt.Errorf("start Xephyr: %w", ctx.Err())
	}
}

// Find looks the Xephyr program up as Start does (bin "" = "Xephyr" in
// PATH) and returns its path, or *NotFoundError.
func Find(bin string) (string, error) {
	if bin == "" {
		bin = "Xephyr"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return "", &NotFoundError{Program: bin, Package: "xserver-xephyr", Err: err}
		}
		return "", fmt.Errorf("find Xephyr program %q: %w", bin, err)
	}
	return path, nil
}

func (s *Server) startupError() error {
	<-s.done
	return &ExitError{Display: -1, Err: cleanWaitErr(s.waitErr), Stderr: s.tail.Lines(8)}
}

// checkAuthFile refuses an -auth file the X server would treat as "no
// authorization at all": missing, empty or unreadable. It also refuses one
// that other users can read, since it holds the cookie.
func checkAuthFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check Xephyr -auth file: %w (write the cookie file before starting Xephyr; without it Xephyr lets every local client in)", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("check Xephyr -auth file %s: not a regular file", path)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("check Xephyr -auth file %s: file is empty; write the cookie first (an empty -auth file lets every local client in)", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("check Xephyr -auth file %s: mode %v lets other users read the cookie; make it 0600", path, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("check Xephyr -auth file: %w", err)
	}
	return f.Close()
}

func (s *Server) wait() {
	s.waitErr = s.cmd.Wait()
	close(s.done)
}

// cleanWaitErr drops exec.ErrWaitDelay: a descendant holding stderr open is
// not Xephyr's exit status.
func cleanWaitErr(err error) error {
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	return err
}

// Done returns a channel closed when the Xephyr process has exited: its
// window was closed, it crashed, -terminate ended it, or Close stopped it.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns nil before Done is closed, and nil when Xephyr exited with
// status 0 or was stopped by Close. Otherwise it returns an *ExitError with
// the exit status and the tail of Xephyr's stderr.
func (s *Server) Err() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	err := cleanWaitErr(s.waitErr)
	if err == nil || s.stopping.Load() {
		return nil
	}
	return &ExitError{Display: s.Display, Err: err, Stderr: s.tail.Lines(8)}
}

// Close stops Xephyr: SIGTERM (which lets it remove its socket), then
// SIGKILL if it has not exited after a grace period of 3 s, and then the
// socket it left is removed, and the memory cgroup leaf Start made for it
// (Memory). It returns once the process is gone. It is idempotent and safe
// to call concurrently with itself and with Done; every call returns the
// first call's result: nil, or an error saying the killed Xephyr's socket
// or its cgroup leaf could not be removed.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	return s.CloseContext(ctx)
}

// CloseContext is Close with the grace period ending with ctx (at most
// 3 s): after a signal, when the session must end at once. When Xephyr had
// to be killed, the socket it could not remove is removed here: the process
// this Server started has been waited for, so the socket is nobody's.
func (s *Server) CloseContext(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closeErr = s.stop(ctx)
		if s.Memory != nil {
			// The process is gone: the leaf is empty now or in a moment
			// (a descendant such as xkbcomp), whatever ctx says.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			s.closeErr = errors.Join(s.closeErr, s.Memory.Remove(rctx))
		}
	})
	return s.closeErr
}

func (s *Server) stop(ctx context.Context) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	s.stopping.Store(true)
	// Signal and Kill are safe after the process exited (os.Process uses a
	// pidfd, so the PID cannot have been reused).
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	start := time.Now()
	select {
	case <-s.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	_ = s.cmd.Process.Kill()
	<-s.done // our child, reaped: the socket is no longer its
	// The display number is free again: a server that started meanwhile
	// may have made the socket anew. Remove it only if nobody listens.
	if s.Display < 0 {
		return nil
	}
	if listening, err := procfs.UnixListening(s.Socket()); err != nil || !listening {
		if err := os.Remove(s.Socket()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stop Xephyr %s (pid %d): killed it %v after SIGTERM, but could not remove its socket: %w",
				s.name(), s.PID, time.Since(start).Round(time.Millisecond), err)
		}
	}
	return nil
}

func (s *Server) name() string {
	if s.Display < 0 {
		return "(starting)"
	}
	return ":" + strconv.Itoa(s.Display)
}

// DisplayName returns ":N".
func (s *Server) DisplayName() string { return ":" + strconv.Itoa(s.Display) }

// Socket returns the path of the display's unix socket, "/tmp/.X11-unix/XN".
func (s *Server) Socket() string { return socketPath(s.Display) }

// StderrTail returns the last lines of Xephyr's stderr (and stdout).
func (s *Server) StderrTail() string { return s.tail.Lines(20) }

func socketPath(display int) string { return "/tmp/.X11-unix/X" + strconv.Itoa(display) }

// teeWriter writes to the tail buffer and, ignoring its errors, to the
// caller's writer: a failing log destination must not stall Xephyr.
type teeWriter struct {
	tail *tailBuffer
	w    io.Writer
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.tail.Write(p)
	_, _ = t.w.Write(p)
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu        sync.Mutex
	max       int
	buf       []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

// Lines returns up to n last non-empty lines, joined by "; ". A line cut by
// the size limit is left out.
func (t *tailBuffer) Lines(n int) string {
	t.mu.Lock()
	text := string(t.buf)
	if t.truncated {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	t.mu.Unlock()
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "; ")
}
