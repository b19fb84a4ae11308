package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// localProc is a program run on this machine in a process group of its own,
// so that Close ends whatever it spawned too.
type localProc struct {
	cmd   *exec.Cmd
	grace time.Duration
	done  chan struct{}
	err   error
	once  sync.Once
}

// startLocal starts argv with the launcher's environment minus DISPLAY and
// XAUTHORITY, plus env.
func startLocal(env, argv []string, stdout, stderr io.Writer, grace time.Duration) (*localProc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(withoutX(os.Environ()), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &localProc{cmd: cmd, grace: grace, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func withoutX(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "DISPLAY=") || strings.HasPrefix(kv, "XAUTHORITY=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (p *localProc) Done() <-chan struct{} { return p.done }

// Wait returns the exit status (128+signal when killed by a signal).
func (p *localProc) Wait() (int, error) {
	<-p.done
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if p.err != nil {
		return -1, p.err
	}
	return 0, nil
}

// Close ends the process group: SIGTERM, then SIGKILL after the grace.
func (p *localProc) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(p.grace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
		case <-ctx.Done():
		}
		// Leftovers of the group (children that ignored TERM) get KILL.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-ctx.Done():
			err = fmt.Errorf("%s (pid %d) did not exit", p.cmd.Path, pgid)
		}
	})
	return err
}
