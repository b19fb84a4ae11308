package guest

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIOConn is a socket whose Read and Write issue read(2) and write(2)
// directly as raw system calls on the non-blocking descriptor, and wait in
// Go's poller only when the socket is not ready.
//
// Why: net.Conn's own Read and Write enter the system call through the
// scheduler (entersyscall/exitsyscall). A write on a loopback or veth socket
// delivers the data and wakes the reader on another CPU inside the call,
// which takes long enough for the runtime to hand this process's P to
// another thread. Measured on the X forward (bench/x11perf, GetProperty
// round trips): with net.Conn's calls the work hopped between three threads
// at about four context switches per round trip, 5,800 round trips/s; with
// raw calls one thread does it all, 9,000/s, and the forward went from 1.6x
// slower than ssh -X to level with it. A read or write on a non-blocking
// socket never blocks, so the scheduler loses nothing by not hearing of it.
//
// Deadlines, Close and the poller's wake-ups work as for the wrapped
// connection: only the two system calls are replaced.
type rawIOConn struct {
	net.Conn
	rc   syscall.RawConn
	gate waitGate // nil: a write waits as long as it takes
}

// waitGate decides whether a write that would block may wait: wait is
// asked once per Write that has to wait (inside the write call: it must not
// block or take a lock that a Close of the socket may hold), each true is
// followed by resume when the Write returns, each false by refused.
type waitGate interface {
	wait() bool
	resume()
	refused()
}

// errStalled is a write refused by the connection's waitGate.
var errStalled = errors.New("peer does not take data and too many connections wait already")

// rawIO wraps c when it is a socket this package can drive directly (TCP or
// unix stream); any other connection is returned unchanged.
func rawIO(c net.Conn) net.Conn {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawIOConn{Conn: c, rc: rc}
}

// maxIO caps one system call, as internal/poll does for stream sockets.
const maxIO = 1 << 30

func (c *rawIOConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxIO {
		p = p[:maxIO]
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait in the poller, then call again
			}
			n, errno = int(r), e
			return true
		}
	})
	if err != nil {
		return 0, c.opError("read", err)
	}
	if errno != 0 {
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawIOConn) Write(p []byte) (int, error) {
	var done int
	var errno syscall.Errno
	waiting, refused := false, false
	defer func() {
		if waiting {
			c.gate.resume()
		}
	}()
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			chunk := p[done:]
			if len(chunk) > maxIO {
				chunk = chunk[:maxIO]
			}
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&chunk[0])), uintptr(len(chunk)))
			switch e {
			case 0:
				done += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				if c.gate != nil && !waiting {
					if !c.gate.wait() {
						refused = true
						return true
					}
					waiting = true
				}
				return false // socket buffer full: wait, then go on
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err != nil {
		return done, c.opError("write", err)
	}
	if refused {
		c.gate.refused()
		return done, c.opError("write", errStalled)
	}
	if errno != 0 {
		return done, c.opError("write", os.NewSyscallError("write", errno))
	}
	return done, nil
}

// CloseWrite passes a half-close on to the wrapped socket.
func (c *rawIOConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return errors.ErrUnsupported
}

// opError words err as net.Conn's own methods would, so callers that look
// for net.ErrClosed or a timeout still find it.
func (c *rawIOConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	oe = &net.OpError{Op: op, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	if oe.Source != nil {
		oe.Net = oe.Source.Network()
	}
	return oe
}
