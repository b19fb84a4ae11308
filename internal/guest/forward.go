package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// X display numbers map to TCP ports 6000+D.
const (
	xPortBase = 6000
	// maxDisplays is how many display numbers after first ForwardX tries.
	maxDisplays = 50
	// copyBufSize is the buffer of each copy direction. A read from an SSH
	// channel returns everything that has arrived (many 32 KiB packets);
	// a big buffer turns a burst (a 1 MB GetImage reply) into few system
	// calls on the unix socket and few channel writes.
	copyBufSize = 256 << 10
	// bigBufs is how many connections of one forward get big copy buffers
	// (4 MiB in all) and a big send buffer toward the X server: the first
	// ones (the window manager's, the app's); the rest get smallBufSize and
	// the kernel's default. A guest with 250 connections costs 4 MiB +
	// 250 x 2 x 16 KiB = 12 MiB of buffers, not 125 MiB (and the kernel
	// holds about 200 KiB per connection, not up to 4 MiB).
	bigBufs      = 8
	smallBufSize = 16 << 10
	// MaxStalled is how many connections of one forward may wait at once
	// for the X server to take what they send. Each waiting connection may
	// have up to its SSH channel's window (2 MiB in x/crypto/ssh, not
	// configurable) queued in our memory; the next connection that would
	// wait is closed instead. Only a busy or grabbed server makes
	// connections wait: during a server grab every other client does.
	MaxStalled = 8
	// DefaultMaxConns caps the forwarded X connections of one forward:
	// Xephyr serves 255 clients (-maxclients 256, one is the server), the
	// launcher holds one, and a few are left for clients on this host.
	DefaultMaxConns = 240
	// localSendBuffer is asked for as SO_SNDBUF on each connection to the
	// X server. Image requests are up to several MB; with the default
	// (about 208 KiB) Xephyr and the forward took turns, one refill and one
	// wake-up per fifth of a 1 MB PutImage. The kernel doubles the value
	// and caps it at net.core.wmem_max (stock: 416 KiB in effect); memory is
	// used only while data waits. Measured (bench/x11perf): PutImage 500x500
	// 1.5x ssh -X with the default, 1.8x with 416 KiB, 2.1x with 4 MiB.
	localSendBuffer = 2 << 20
	// cancelWait bounds how long Close waits for the guest to confirm the
	// cancelled forward; the listener stops accepting at once either way.
	cancelWait = 5 * time.Second
	// localDialTimeout bounds a connect to the local X socket (blocks only
	// when the server's backlog is full).
	localDialTimeout = 10 * time.Second
)

var (
	copyBufs  = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBufSize); return &b }}
)

// ForwardOptions bound what a guest can make a forward hold. The zero value
// is the default.
type ForwardOptions struct {
	// MaxConns caps the connections forwarded at once (0: DefaultMaxConns);
	// one beyond it is closed as soon as it opens.
	MaxConns int
	// Notice, if set, is told once per kind when the forward closes a
	// connection to stay within its bounds.
	Notice func(msg string)
}

// ForwardingRefusedError means the guest's sshd does not allow remote port
// forwarding, which carries X from the guest to the local display.
type ForwardingRefusedError struct {
	Addr string // the guest, host:port
}

func (e *ForwardingRefusedError) Error() string {
	return fmt.Sprintf("guest %s refuses remote port forwarding, which carries X to this display", e.Addr)
}

// Forward is a remote forward made by ForwardX: a listener on the guest's
// 127.0.0.1:6000+Display whose connections are copied to a local unix
// socket. Display is read-only. Close it when done.
type Forward struct {
	Display int // D: guest programs use DISPLAY=localhost:D

	c      *Client
	socket string
	ln     net.Listener
	ctx    context.Context // ends at Close: bounds local dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every copy goroutine

	mu      sync.Mutex
	closed  bool
	conns   map[*xConn]struct{}
	bigFree int          // big copy buffers left
	stalled atomic.Int32 // connections waiting for the X server to take their data (see wait)

	o                      ForwardOptions
	refusedOnce, stallOnce sync.Once
	refusedConns           int // connections closed beyond MaxConns, for tests

	closeOnce sync.Once
	closeErr  error
}

// xConn is one forwarded X connection: the SSH channel and the local socket.
type xConn struct {
	remote net.Conn // an ssh channel; has CloseWrite
	local  *net.UnixConn
}

func (x *xConn) close() {
	x.remote.Close()
	if x.local != nil {
		x.local.Close()
	}
}

// ForwardX opens a listener on the guest's loopback, 127.0.0.1:6000+D for
// the first free D from first up to first+50, and copies each connection
// accepted there to the local unix socket (Xephyr's /tmp/.X11-unix/XN). The
// guest then uses DISPLAY=localhost:D. ctx bounds only the setup.
//
// What the guest sends is bounded whatever it does (o): at most o.MaxConns
// connections at once (more are closed at once, noticed once); the first
// connections get big copy buffers, later ones small; and at most
// MaxStalled connections may wait for a busy X server with their SSH
// channel's window of data queued here: one more that would wait is closed
// (noticed once). An X client that holds a server grab makes every other
// client wait, so a guest can make the forward close its own connections,
// never grow without bound.
//
// Throughput and latency need a session command running on the same
// connection (Start or Run): OpenSSH's sshd turns Nagle's algorithm off on
// the connection only when a session command starts, and without that
// every X reply that is not a multiple of the packet size waits for the
// delayed ACK (measured 25 GetImage/s instead of 400). Our own end has
// TCP_NODELAY set. Both sockets under the forward (the SSH connection and
// each connection to Xephyr) do their reads and writes as raw system calls
// (rawIO): through net.Conn's own, the runtime handed the P to another
// thread during each write and round trips were 1.6x slower than ssh -X.
// What is left of the CPU is x/crypto/ssh's: it hands every packet from its
// reader goroutine to its mux goroutine to the reader of the channel, and
// allocates and copies each packet. One P keeps those hand-offs on one
// thread and GOGC=400 halves the collections; both are process-wide, so
// ForwardX leaves them to the program (TuneProcess).
//
// It returns *ForwardingRefusedError when the guest's sshd forbids remote
// forwarding (told apart from a port in use by asking for a server-chosen
// port after a refusal), an error naming the range when all 51 ports are in
// use, and a wrapped connection or context error otherwise.
func (c *Client) ForwardX(ctx context.Context, socket string, first int, o ForwardOptions) (*Forward, error) {
	if socket == "" {
		return nil, errors.New("forward X: no local X socket given")
	}
	if first < 0 || xPortBase+first+maxDisplays > 65535 {
		return nil, fmt.Errorf("forward X: first display %d out of range 0..%d", first, 65535-xPortBase-maxDisplays)
	}
	if tcp, ok := c.first.(*net.TCPConn); ok {
		// Go's default, made explicit: X round trips must not wait for ACKs.
		_ = tcp.SetNoDelay(true)
	}
	probed := false
	for d := first; d <= first+maxDisplays; d++ {
		ln, err := c.listen(ctx, xPortBase+d)
		if err == nil {
			return c.serveX(ln, socket, d, o), nil
		}
		if !errors.Is(err, errDenied) {
			return nil, fmt.Errorf("forward X display %d on guest %s: %w", d, c.RemoteAddr(), err)
		}
		// Denied: the port is in use, or forwarding is forbidden. A port
		// of the server's choosing is free, so a second denial means the
		// latter.
		if !probed {
			probed = true
			if err := c.CheckForwarding(ctx); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("forward X: ports 127.0.0.1:%d..%d on guest %s are all in use (X servers or stale forwards there?): "+
		"free one or choose another first display",
		xPortBase+first, xPortBase+first+maxDisplays, c.RemoteAddr())
}

// errDenied is a "tcpip-forward" request the guest answered with failure.
var errDenied = errors.New("tcpip-forward request denied")

// listen asks the guest to listen on 127.0.0.1:port; it returns errDenied
// when the guest said no.
func (c *Client) listen(ctx context.Context, port int) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ln, err := c.conn.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ch <- result{ln, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			select {
			case <-c.done:
				return nil, fmt.Errorf("connection lost: %w", r.err)
			default:
			}
			// x/crypto/ssh returns an unexported error for a refusal; a
			// broken connection shows as c.done above.
			return nil, fmt.Errorf("%w: %v", errDenied, r.err)
		}
		return r.ln, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.ln != nil {
				r.ln.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// CheckForwarding asks the guest to listen on a port of its choosing on
// 127.0.0.1 and cancels that at once. It returns nil when the guest's sshd
// allows remote forwarding, *ForwardingRefusedError when it refuses, and a
// wrapped connection or context error otherwise.
func (c *Client) CheckForwarding(ctx context.Context) error {
	type result struct {
		ok   bool
		resp []byte
		err  error
	}
	req := ssh.Marshal(&struct {
		Addr string
		Port uint32
	}{"127.0.0.1", 0})
	ch := make(chan result, 1)
	go func() {
		ok, resp, err := c.conn.SendRequest("tcpip-forward", true, req)
		ch <- result{ok, resp, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.ok {
				c.cancelForward(r.resp)
			}
		}()
		return fmt.Errorf("check port forwarding on guest %s: %w", c.RemoteAddr(), ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("check port forwarding on guest %s: %w", c.RemoteAddr(), r.err)
	}
	if !r.ok {
		return &ForwardingRefusedError{Addr: c.RemoteAddr()}
	}
	c.cancelForward(r.resp)
	return nil
}

// cancelForward cancels the probe forward whose port the guest chose and
// sent in resp. A failure is harmless: nobody connects to that port, and
// the guest drops it with the connection.
func (c *Client) cancelForward(resp []byte) {
	var p struct{ Port uint32 }
	if ssh.Unmarshal(resp, &p) != nil {
		return
	}
	_, _, _ = c.conn.SendRequest("cancel-tcpip-forward", false, ssh.Marshal(&struct {
		Addr string
		Port uint32
	}{"127.0.0.1", p.Port}))
}

func (c *Client) serveX(ln net.Listener, socket string, d int, o ForwardOptions) *Forward {
	ctx, cancel := context.WithCancel(context.Background())
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	f := &Forward{Display: d, c: c, socket: socket, ln: ln, ctx: ctx, cancel: cancel, conns: map[*xConn]struct{}{},
		bigFree: bigBufs, o: o}
	f.wg.Add(1)
	go f.accept()
	return f
}

// accept hands every connection to a goroutine of its own at once:
// x/crypto/ssh holds up all forwards of the connection while one listener
// is not accepting.
func (f *Forward) accept() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if errors.Is(err, io.EOF) {
			return // Close, or the connection ended
		}
		if err != nil {
			continue // this channel failed to open; the listener is fine
		}
		x := &xConn{remote: conn}
		ok, full := f.add(x)
		if full {
			conn.Close()
			f.refusedOnce.Do(func() {
				f.notice(fmt.Sprintf("the guest opened more than %d X connections at once (max_x_connections); "+
					"closed the ones beyond", f.o.MaxConns))
			})
			continue
		}
		if !ok {
			conn.Close()
			return
		}
		go f.serve(x)
	}
}

func (f *Forward) notice(msg string) {
	if f.o.Notice != nil {
		f.o.Notice(msg)
	}
}

// add registers x; ok is false once Close has begun, full when x would be
// one connection too many.
func (f *Forward) add(x *xConn) (ok, full bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, false
	}
	if len(f.conns) >= f.o.MaxConns {
		f.refusedConns++
		return false, true
	}
	f.conns[x] = struct{}{}
	f.wg.Add(1)
	return true, false
}

// bufs hands out the copy buffers of one connection: big ones (and a big
// send buffer toward the X server) while the forward's share lasts, small
// ones after that.
func (f *Forward) bufs() (up, down *[]byte, big bool, release func()) {
	f.mu.Lock()
	big = f.bigFree > 0
	if big {
		f.bigFree--
	}
	f.mu.Unlock()
	if !big {
		up, down = smallBufs.Get().(*[]byte), smallBufs.Get().(*[]byte)
		return up, down, false, func() { smallBufs.Put(up); smallBufs.Put(down) }
	}
	up, down = copyBufs.Get().(*[]byte), copyBufs.Get().(*[]byte)
	return up, down, true, func() {
		copyBufs.Put(up)
		copyBufs.Put(down)
		f.mu.Lock()
		f.bigFree++
		f.mu.Unlock()
	}
}

// wait is called when a connection's write to the X server would block; it
// reports whether the connection may wait (see MaxStalled). Each true is
// matched by a call of resume. It runs inside the socket's write call, which
// Close of that socket waits for: it takes no lock.
func (f *Forward) wait() bool {
	if f.stalled.Add(1) > MaxStalled {
		f.stalled.Add(-1)
		return false
	}
	return true
}

// refused is called, outside the write call, after wait said no.
func (f *Forward) refused() {
	f.stallOnce.Do(func() {
		f.notice(fmt.Sprintf("closed guest X connections that the nested display did not read while %d others "+
			"waited already (a client holding a server grab?): each waiting one may hold 2 MiB here", MaxStalled))
	})
}

func (f *Forward) resume() { f.stalled.Add(-1) }

func (f *Forward) remove(x *xConn) {
	f.mu.Lock()
	delete(f.conns, x)
	f.mu.Unlock()
	f.wg.Done()
}

// serve connects x to the local socket and copies both ways until both
// sides have ended. An end of input is passed on as a half-close, so an X
// client that exits ends its connection cleanly; an error on either side
// closes both.
func (f *Forward) serve(x *xConn) {
	defer f.remove(x)
	d := net.Dialer{Timeout: localDialTimeout}
	lc, err := d.DialContext(f.ctx, "unix", f.socket)
	if err != nil {
		// The X client sees its connection closed, as if the server had
		// gone; there is nobody to report the error to.
		x.close()
		return
	}
	uc := lc.(*net.UnixConn)
	upBuf, downBuf, big, release := f.bufs()
	defer release()
	if big {
		// Best effort: a speed-up only. The kernel holds up to twice this
		// per connection, so only the first connections get it.
		_ = uc.SetWriteBuffer(localSendBuffer)
	}
	f.mu.Lock()
	closed := f.closed
	if !closed {
		x.local = uc
	}
	f.mu.Unlock()
	if closed { // Close ran while we dialled
		lc.Close()
		x.close()
		return
	}

	local := rawIO(x.local)
	if rc, ok := local.(*rawIOConn); ok {
		rc.gate = f
	}
	down := make(chan struct{})
	go func() {
		defer close(down)
		if copyHalf(x.remote, local, *downBuf) != nil {
			x.close()
		}
	}()
	if copyHalf(local, x.remote, *upBuf) != nil {
		x.close()
	}
	<-down
	x.close()
}

// halfCloser is a connection whose write side can be shut on its own: an
// ssh channel (sends EOF) and a unix socket (shutdown SHUT_WR).
type halfCloser interface {
	CloseWrite() error
}

// copyHalf copies src to dst through buf until src ends, then closes dst's
// write side. It returns the first error other than src's end.
func copyHalf(dst, src net.Conn, buf []byte) error {
	// Neither an ssh channel nor a unix socket has WriteTo/ReadFrom that
	// would save this copy (x/crypto/ssh copies each packet out of its
	// receive list on Read and into a packet buffer on Write).
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
	if err != nil {
		return err
	}
	if hc, ok := dst.(halfCloser); ok {
		return hc.CloseWrite()
	}
	return dst.Close()
}

// Close stops listening on the guest, closes every forwarded connection and
// waits until their copies have ended. It is idempotent and returns the
// first call's result: an error only when the guest did not confirm the
// cancelled forward while the connection was up.
func (f *Forward) Close() error {
	f.closeOnce.Do(func() {
		// Closing a socket waits for a write in progress on it, and a
		// write may be in wait: close outside the lock.
		f.mu.Lock()
		f.closed = true
		conns := make([]xConn, 0, len(f.conns))
		for x := range f.conns {
			conns = append(conns, *x) // x.local is set under f.mu
		}
		f.mu.Unlock()
		for _, x := range conns {
			x.close()
		}
		f.cancel()

		// The listener stops accepting before its cancel request is sent;
		// only the guest's answer may take long.
		errc := make(chan error, 1)
		go func() { errc <- f.ln.Close() }()
		t := time.NewTimer(cancelWait)
		defer t.Stop()
		var err error
		select {
		case err = <-errc:
		case <-t.C:
			err = fmt.Errorf("no answer within %v", cancelWait)
		case <-f.c.done:
		}
		f.wg.Wait()
		select {
		case <-f.c.done: // the forward ended with the connection
		default:
			if err != nil {
				f.closeErr = fmt.Errorf("cancel X forward of display %d on guest %s: %w", f.Display, f.c.RemoteAddr(), err)
			}
		}
	})
	return f.closeErr
}
