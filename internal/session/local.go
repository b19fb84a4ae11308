package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// localProc is a program run on this machine in a process group of its own,
// so that Close ends whatever it spawned too.
//
// The group is signalled by number, and a number is free for reuse once the
// group's last member is reaped. So the program is not reaped when it exits
// (waitid WNOWAIT tells us the exit and its status): as a zombie it keeps its
// PID, and with it the group's number, until Close has signalled the group.
type localProc struct {
	cmd    *exec.Cmd
	grace  time.Duration
	done   chan struct{} // the program has exited (it may still be a zombie)
	status int           // set before done is closed
	err    error         // set before done is closed
	once   sync.Once
}

// startLocal starts argv with the launcher's environment base (nil: the
// process's) minus DISPLAY and XAUTHORITY, plus env.
func startLocal(base, env, argv []string, stdout, stderr io.Writer, grace time.Duration) (*localProc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if base == nil {
		base = os.Environ()
	}
	cmd.Env = append(withoutX(base), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// Bounds Close's reap when something that left the group holds our pipes.
	cmd.WaitDelay = grace
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &localProc{cmd: cmd, grace: grace, done: make(chan struct{})}
	go func() {
		p.status, p.err = waitExit(cmd.Process.Pid)
		if p.err != nil {
			// Cannot wait without reaping: fall back to exec's Wait.
			p.status, p.err = exitStatus(cmd.Wait())
		}
		close(p.done)
	}()
	return p, nil
}

// Values from <sys/wait.h> and <signal.h> for waitid(2).
const (
	pPID      = 1 // P_PID
	cldExited = 1 // CLD_EXITED
	cldKilled = 2 // CLD_KILLED
	cldDumped = 3 // CLD_DUMPED
)

// waitExit waits until the child pid has exited, without reaping it, and
// returns its exit status (128+signal when killed by a signal).
func waitExit(pid int) (int, error) {
	// siginfo_t is 128 bytes; for SIGCHLD si_code is the third int and
	// si_status the third int of the union, which is pointer-aligned.
	var info [128]byte
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])),
			syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		break
	}
	ptr := int(unsafe.Sizeof(uintptr(0)))
	union := (12 + ptr - 1) / ptr * ptr
	code := int32(binary.NativeEndian.Uint32(info[8:]))
	st := int(int32(binary.NativeEndian.Uint32(info[union+8:])))
	switch code {
	case cldExited:
		return st, nil
	case cldKilled, cldDumped:
		return 128 + st, nil
	}
	return -1, fmt.Errorf("waitid: unexpected si_code %d", code)
}

// exitStatus turns exec's Wait result into a status as waitExit does.
func exitStatus(err error) (int, error) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return -1, err
	}
	return 0, nil
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
	return p.status, p.err
}

// Close ends the process group: SIGTERM, then SIGKILL after the grace; then
// it reaps the program.
func (p *localProc) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		// Until the reap below the program's PID (a zombie at worst) keeps
		// the group's number ours.
		defer func() {
			select {
			case <-p.done:
				_ = p.cmd.Wait()
			default:
				go func() { <-p.done; _ = p.cmd.Wait() }()
			}
		}()
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
