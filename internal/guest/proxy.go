package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proxyConn is a ProxyCommand's standard input and output as a connection:
// the command runs locally through sh -c (it is the user's own ssh_config),
// in a process group of its own that Close ends.
type proxyConn struct {
	cmd     *exec.Cmd
	r       io.ReadCloser
	w       io.WriteCloser
	addr    string
	command string
	stderr  *tailBuffer
	waited  chan struct{}
	waitErr error

	closeOnce sync.Once
}

// proxyGrace is how long a ProxyCommand gets to exit after SIGTERM before
// SIGKILL (and half of it after its input closed, before SIGTERM).
const proxyGrace = time.Second

// startProxy starts command (tokens already expanded) for the connection to
// addr.
func startProxy(ctx context.Context, command, addr string) (net.Conn, error) {
	cmd := exec.Command("/bin/sh", "-c", "exec "+strings.TrimPrefix(command, "exec "))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proxyConn{cmd: cmd, addr: addr, command: command, stderr: &tailBuffer{max: 4096}, waited: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.WaitDelay = proxyGrace // a child outside the group may hold stderr
	var err error
	if p.w, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("ProxyCommand for %s: %w", addr, err)
	}
	if p.r, err = cmd.StdoutPipe(); err != nil {
		return nil, fmt.Errorf("ProxyCommand for %s: %w", addr, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ProxyCommand for %s: %w", addr, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, &UnreachableError{Addr: addr, Err: fmt.Errorf("ProxyCommand %q: %w", command, err)}
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.waited)
	}()
	return p, nil
}

func (p *proxyConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *proxyConn) Write(b []byte) (int, error) { return p.w.Write(b) }

// Close closes the command's input and, unless the command then exits by
// itself within proxyGrace/2 (so a failing command's last words and status
// are kept for proxyExit), ends its process group: SIGTERM, SIGKILL after
// proxyGrace. It returns once the command is reaped: nothing of it outlives
// the launcher, whose exit would leave a command that ignores the end of
// its input (nc) running.
func (p *proxyConn) Close() error {
	p.closeOnce.Do(func() {
		p.w.Close()
		pgid := p.cmd.Process.Pid
		t := time.NewTimer(proxyGrace / 2)
		defer t.Stop()
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			select {
			case <-p.waited:
				return
			case <-t.C:
			}
			_ = syscall.Kill(-pgid, sig)
			t.Reset(proxyGrace)
		}
		<-p.waited // SIGKILL; WaitDelay bounds the wait for its stderr
	})
	return nil
}

// ProxyCommandError means the ProxyCommand ended before the SSH handshake
// was done: it could not reach the host, or is not a proxy.
type ProxyCommandError struct {
	Addr    string // the host:port it was to connect to
	Command string // the command, % tokens expanded
	Exit    string // how it ended, e.g. "exit status 1"
	Stderr  string // the end of what it wrote to stderr
}

func (e *ProxyCommandError) Error() string {
	msg := fmt.Sprintf("ProxyCommand for %s ended (%s) before the SSH handshake", e.Addr, e.Exit)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// proxyExit is the ProxyCommand's exit as a *ProxyCommandError when conn is
// one whose command has ended (waiting a little for that), else nil.
func proxyExit(conn net.Conn) error {
	p, ok := conn.(*proxyConn)
	if !ok {
		return nil
	}
	select {
	case <-p.waited:
	case <-time.After(proxyGrace / 2):
		return nil
	}
	e := &ProxyCommandError{Addr: p.addr, Command: p.command, Exit: "exit status 0", Stderr: strings.TrimSpace(p.stderr.String())}
	if p.waitErr != nil {
		e.Exit = p.waitErr.Error()
	}
	return e
}

type proxyAddr string

func (a proxyAddr) Network() string { return "proxycommand" }
func (a proxyAddr) String() string  { return string(a) }

func (p *proxyConn) LocalAddr() net.Addr                { return proxyAddr("proxycommand") }
func (p *proxyConn) RemoteAddr() net.Addr               { return proxyAddr(p.addr) }
func (p *proxyConn) SetDeadline(t time.Time) error      { return errors.ErrUnsupported }
func (p *proxyConn) SetReadDeadline(t time.Time) error  { return errors.ErrUnsupported }
func (p *proxyConn) SetWriteDeadline(t time.Time) error { return errors.ErrUnsupported }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
