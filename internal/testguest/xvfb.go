package testguest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// XvfbOptions configures an Xvfb.
type XvfbOptions struct {
	Screen string   // screen 0 as WxHxDEPTH; default "1280x1024x24"
	Args   []string // extra Xvfb arguments, appended last
	// Xauthority, if set, is passed as -auth and put into Env as XAUTHORITY.
	// Write the cookie into it before NewXvfb: the server lets everyone in
	// when the file is empty or missing. Without it, access is host-based
	// (every local user may connect), which is fine for a throwaway display.
	Xauthority string
}

// Xvfb is a running Xvfb server, the stand-in for the user's host display.
// Its fields are read-only.
type Xvfb struct {
	Display string // ":N"
	Num     int
	PID     int

	xauthority string
	cmd        *exec.Cmd
	log        *LogBuffer
	waitDone   chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// NewXvfb starts Xvfb on the first free display (-displayfd; concurrent
// servers cannot get the same one: each must bind the display's socket) with
// -nolisten tcp -noreset, and returns once the server accepts clients. ctx
// bounds only the start-up. It returns a *PrereqError if Xvfb is not installed, and an
// error with Xvfb's output if it exits or ctx ends before it is ready.
func NewXvfb(ctx context.Context, opts XvfbOptions) (*Xvfb, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	path, err := findProgram("Xvfb", "xvfb")
	if err != nil {
		return nil, err
	}
	screen := opts.Screen
	if screen == "" {
		screen = "1280x1024x24"
	}
	// -noreset: a desktop's display does not reset while its session runs;
	// an Xvfb resets whenever its last client leaves, and a launch starting
	// during that reset (right after the previous test's Xephyr left) fails
	// with "cannot open host display".
	args := []string{"-displayfd", "3", "-nolisten", "tcp", "-noreset", "-screen", "0", screen}
	if opts.Xauthority != "" {
		args = append(args, "-auth", opts.Xauthority)
	}
	args = append(args, opts.Args...)

	fdR, fdW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start Xvfb: %w", err)
	}
	defer func() { _ = fdR.Close() }()
	logR, logW, err := os.Pipe()
	if err != nil {
		_ = fdW.Close()
		return nil, fmt.Errorf("start Xvfb: %w", err)
	}
	x := &Xvfb{xauthority: opts.Xauthority, log: NewLogBuffer(256 << 10), waitDone: make(chan struct{})}
	cmd := exec.Command(path, args...)
	cmd.ExtraFiles = []*os.File{fdW} // fd 3
	cmd.Stdout, cmd.Stderr = logW, logW
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = startHeld(cmd, x.waitDone)
	_ = fdW.Close()
	_ = logW.Close()
	if err != nil {
		_ = logR.Close()
		return nil, fmt.Errorf("start Xvfb: %w", err)
	}
	x.cmd, x.PID = cmd, cmd.Process.Pid
	logDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(x.log, logR)
		_ = logR.Close()
		close(logDone)
	}()
	go func() {
		_ = cmd.Wait()
		close(x.waitDone)
	}()

	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(fdR).ReadString('\n')
		got <- result{line, err}
	}()
	fail := func(err error) (*Xvfb, error) {
		_ = x.Close()
		<-logDone
		return nil, fmt.Errorf("start Xvfb: %w; Xvfb said: %s", err, x.log.tail(2000))
	}
	select {
	case res := <-got:
		if res.err != nil {
			return fail(fmt.Errorf("no display number from -displayfd (server exited?): %w", res.err))
		}
		n, err := strconv.Atoi(strings.TrimSpace(res.line))
		if err != nil || n < 0 {
			return fail(fmt.Errorf("bad display number %q from -displayfd", res.line))
		}
		x.Num, x.Display = n, ":"+strconv.Itoa(n)
		return x, nil
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// Env returns the environment entries a client of this display needs:
// DISPLAY, and XAUTHORITY when XvfbOptions.Xauthority was set.
func (x *Xvfb) Env() []string {
	env := []string{"DISPLAY=" + x.Display}
	if x.xauthority != "" {
		env = append(env, "XAUTHORITY="+x.xauthority)
	}
	return env
}

// Log returns what Xvfb wrote to stdout and stderr so far (at most 256 KiB).
func (x *Xvfb) Log() string { return x.log.String() }

// Close ends the server: SIGTERM, then SIGKILL after 5 s, and waits for it.
// After a SIGKILL it removes the display's stale socket. It is idempotent.
func (x *Xvfb) Close() error {
	if x == nil || x.cmd == nil {
		return nil
	}
	x.closeOnce.Do(func() { x.closeErr = x.close() })
	return x.closeErr
}

func (x *Xvfb) close() error {
	select {
	case <-x.waitDone:
		return nil
	default:
	}
	_ = x.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-x.waitDone:
		return nil
	case <-t.C:
	}
	_ = x.cmd.Process.Kill()
	t.Reset(closeTimeout)
	select {
	case <-x.waitDone:
	case <-t.C:
		return fmt.Errorf("close Xvfb %s: pid %d survived SIGKILL", x.Display, x.PID)
	}
	if x.Display != "" {
		_ = os.Remove(fmt.Sprintf("/tmp/.X11-unix/X%d", x.Num))
	}
	return nil
}
