package guest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// guestClient is run by python3 inside the guest's network namespace. Mode
// "echo" sends stdin to 127.0.0.1:PORT, half-closes, and prints what comes
// back until EOF; mode "hold" connects, prints "connected" and reads until
// EOF; mode "stream" connects, prints "connected", writes until the
// connection fails and then prints "closed"; mode "occupy" listens on the
// port, prints "ready" and waits for stdin to end.
const guestClient = `
import socket, sys, threading
port, mode = int(sys.argv[1]), sys.argv[2]
if mode == "occupy":
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(1)
    print("ready", flush=True)
    sys.stdin.read()
    sys.exit(0)
s = socket.create_connection(("127.0.0.1", port))
if mode == "stream":
    print("connected", flush=True)
    try:
        while True:
            s.sendall(bytes(65536))
    except OSError:
        print("closed", flush=True)
    sys.exit(0)
if mode == "hold":
    print("connected", flush=True)
    while s.recv(65536):
        pass
    sys.exit(0)
data = sys.stdin.buffer.read()
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
out = bytearray()
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    out += b
t.join()
sys.stdout.buffer.write(out)
`

func guestPython(ctx context.Context, g *testguest.Guest, port int, mode string) *exec.Cmd {
	return g.Command(ctx, "/usr/bin/python3", "-c", guestClient, strconv.Itoa(port), mode)
}

// echoServer is the local stand-in for Xephyr's socket: it echoes each
// connection until EOF, then half-closes, and reports every accept on
// accepted.
type echoServer struct {
	path     string
	ln       *net.UnixListener
	accepted chan *net.UnixConn
	wg       sync.WaitGroup
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "X")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{path: path, ln: ln, accepted: make(chan *net.UnixConn, 100)}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			e.accepted <- c
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				if _, err := io.Copy(c, c); err == nil {
					c.CloseWrite()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.wg.Wait()
	})
	return e
}

// roundTrip sends n random bytes from inside the guest to localhost:6000+d
// and checks that the echo came back intact.
func roundTrip(t *testing.T, ctx context.Context, g *testguest.Guest, d, n int) {
	t.Helper()
	in := make([]byte, n)
	for i := range in {
		in[i] = byte(rand.Uint32())
	}
	var out, errb bytes.Buffer
	cmd := guestPython(ctx, g, 6000+d, "echo")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("guest client on port %d: %v: %s", 6000+d, err, errb.String())
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("guest got %d bytes back that differ from the %d sent", out.Len(), n)
	}
}

func forwardX(t *testing.T, ctx context.Context, c *Client, socket string, first int) *Forward {
	t.Helper()
	f, err := c.ForwardX(ctx, socket, first, ForwardOptions{})
	if err != nil {
		t.Fatalf("ForwardX(%s, %d): %v", socket, first, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// settledGoroutines waits until the goroutine count is at most want and
// fails after 20 s.
func settledGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestForwardX(t *testing.T) {
	g, _, c := realGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	echo := startEcho(t)

	// Warm up: x/crypto/ssh starts its forward handlers once per connection.
	f0 := forwardX(t, ctx, c, echo.path, 40)
	roundTrip(t, ctx, g, f0.Display, 10)
	if err := f0.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The guest's answer to our channel close precedes this session's end
	// on the connection; then the channel's goroutines are on their way out.
	if err := c.Run(ctx, "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(10 * time.Millisecond)
		base = min(base, runtime.NumGoroutine())
	}

	t.Run("check forwarding", func(t *testing.T) {
		if err := c.CheckForwarding(ctx); err != nil {
			t.Fatalf("CheckForwarding = %v, want nil", err)
		}
	})

	t.Run("round trip with half-close", func(t *testing.T) {
		f := forwardX(t, ctx, c, echo.path, 10)
		if f.Display != 10 {
			t.Errorf("Display = %d, want 10 (the first on a fresh guest)", f.Display)
		}
		roundTrip(t, ctx, g, f.Display, 3<<20)
		roundTrip(t, ctx, g, f.Display, 0)
	})

	t.Run("two forwards get different displays", func(t *testing.T) {
		f1 := forwardX(t, ctx, c, echo.path, 10)
		f2 := forwardX(t, ctx, c, echo.path, 10)
		if f1.Display == f2.Display {
			t.Fatalf("both forwards got display %d", f1.Display)
		}
		var wg sync.WaitGroup
		for _, f := range []*Forward{f1, f2} {
			wg.Go(func() { roundTrip(t, ctx, g, f.Display, 1<<20) })
		}
		wg.Wait()
	})

	t.Run("port in use is skipped", func(t *testing.T) {
		occ := guestPython(ctx, g, 6020, "occupy")
		stdin, err := occ.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := occ.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := occ.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			stdin.Close()
			occ.Wait()
		}()
		if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
			t.Fatalf("occupier said %q, %v", line, err)
		}
		f := forwardX(t, ctx, c, echo.path, 20)
		if f.Display != 21 {
			t.Errorf("Display = %d, want 21 (6020 is taken)", f.Display)
		}
		roundTrip(t, ctx, g, f.Display, 1000)
	})

	t.Run("close ends copies", func(t *testing.T) {
		for len(echo.accepted) > 0 { // connections of earlier subtests
			<-echo.accepted
		}
		f := forwardX(t, ctx, c, echo.path, 10)
		hold := guestPython(ctx, g, 6000+f.Display, "hold")
		stdout, err := hold.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		hold.Stderr = &errb
		if err := hold.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "connected\n" {
			t.Fatalf("guest client said %q, %v: %s", line, err, errb.String())
		}
		var local *net.UnixConn
		select {
		case local = <-echo.accepted:
		case <-ctx.Done():
			t.Fatal("the forwarded connection never reached the local socket")
		}
		checkSendBuffer(t, f)
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		// The guest client sees EOF and exits 0; the local side is closed.
		if err := hold.Wait(); err != nil {
			t.Errorf("guest client after Close: %v: %s", err, errb.String())
		}
		local.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := local.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("local read after Close: %v, want EOF", err)
		}
		// Nobody listens on the guest any more.
		var out bytes.Buffer
		again := guestPython(ctx, g, 6000+f.Display, "hold")
		again.Stderr = &out
		if err := again.Run(); err == nil || !strings.Contains(out.String(), "ConnectionRefused") {
			t.Errorf("connect after Close: %v: %s; want connection refused", err, out.String())
		}
	})

	t.Run("local socket missing", func(t *testing.T) {
		f := forwardX(t, ctx, c, filepath.Join(t.TempDir(), "none"), 10)
		var out bytes.Buffer
		cmd := guestPython(ctx, g, 6000+f.Display, "echo")
		cmd.Stdin, cmd.Stdout = strings.NewReader("hello"), &out
		// The X client sees its connection end; the forward stays usable.
		_ = cmd.Run()
		if out.Len() != 0 {
			t.Errorf("guest got %q from a missing socket", out.String())
		}
	})

	t.Run("real X server", func(t *testing.T) {
		cookie, err := xauth.NewCookie()
		if err != nil {
			t.Fatal(err)
		}
		auth := filepath.Join(t.TempDir(), "auth")
		if err := xauth.WriteFile(auth, []xauth.Entry{xauth.WildEntry(0, cookie)}); err != nil {
			t.Fatal(err)
		}
		x := testguest.StartXvfb(t, testguest.XvfbOptions{Xauthority: auth, Screen: "640x480x24"})
		f := forwardX(t, ctx, c, "/tmp/.X11-unix/X"+strconv.Itoa(x.Num), 10)

		guestAuth := g.Home + "/.xvm-forward-test"
		var numeric bytes.Buffer
		if err := xauth.WriteNumeric(&numeric, []xauth.Entry{xauth.WildEntry(f.Display, cookie)}); err != nil {
			t.Fatal(err)
		}
		cmd, err := Command(nil, []string{"xauth", "-q", "-f", guestAuth, "nmerge", "-"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(ctx, cmd, &numeric, nil, nil); err != nil {
			t.Fatalf("write guest Xauthority: %v", err)
		}
		display := "localhost:" + strconv.Itoa(f.Display)
		for _, tc := range []struct {
			name, xauthority string
			ok               bool
		}{
			{"with cookie", guestAuth, true},
			{"without cookie", g.Home + "/.none", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cmd, err := Command([]string{"DISPLAY=" + display, "XAUTHORITY=" + tc.xauthority}, []string{"xdpyinfo"})
				if err != nil {
					t.Fatal(err)
				}
				var out, errb bytes.Buffer
				err = c.Run(ctx, cmd, nil, &out, &errb)
				if tc.ok {
					if err != nil || !strings.Contains(out.String(), "name of display:    "+display) {
						t.Errorf("xdpyinfo on %s: %v: %s%s", display, err, out.String(), errb.String())
					}
				} else if err == nil {
					t.Errorf("xdpyinfo without the cookie succeeded through the forward")
				}
			})
		}
	})

	// Every forward above was closed by its subtest's cleanup; counted here,
	// outside any subtest, like base.
	settledGoroutines(t, base)
}

func TestForwardXRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		sshd []string
	}{
		{"AllowTcpForwarding no", []string{"AllowTcpForwarding no"}},
		{"AllowTcpForwarding local", []string{"AllowTcpForwarding local"}},
		{"DisableForwarding yes", []string{"DisableForwarding yes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testguest.Start(t, testguest.Options{SSHDConfig: tc.sshd})
			tg, err := Resolve(g.Alias, Overrides{}, Config{SSHConfigFile: g.SSHConfig, Home: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			c := dialReal(t, tg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			f, err := c.ForwardX(ctx, "/tmp/.X11-unix/X0", 10, ForwardOptions{})
			var re *ForwardingRefusedError
			if !errors.As(err, &re) {
				if f != nil {
					f.Close()
				}
				t.Fatalf("ForwardX = %v, want *ForwardingRefusedError", err)
			}
			// What to change on the guest is the CLI's hint (explain.go).
			for _, want := range []string{"refuses remote port forwarding", g.Addr} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if err := c.CheckForwarding(ctx); !errors.As(err, &re) {
				t.Errorf("CheckForwarding = %v, want *ForwardingRefusedError", err)
			}
			// The connection is still usable.
			if err := c.Run(ctx, "true", nil, nil, nil); err != nil {
				t.Errorf("Run(true) after the refusal: %v", err)
			}
		})
	}
}

func TestForwardXArgs(t *testing.T) {
	c := &Client{}
	for _, tc := range []struct {
		name, socket string
		first        int
		want         string
	}{
		{"no socket", "", 10, "no local X socket"},
		{"negative", "/tmp/.X11-unix/X1", -1, "out of range"},
		{"too high", "/tmp/.X11-unix/X1", 59500, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ForwardX(context.Background(), tc.socket, tc.first, ForwardOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ForwardX(%q, %d) = %v, want error with %q", tc.socket, tc.first, err, tc.want)
			}
		})
	}
}

// checkSendBuffer checks that f's one connection to the X server asked for
// localSendBuffer: the kernel reports twice the value, capped by
// net.core.wmem_max.
func checkSendBuffer(t *testing.T, f *Forward) {
	t.Helper()
	var local *net.UnixConn
	for deadline := time.Now().Add(10 * time.Second); local == nil; {
		f.mu.Lock()
		for x := range f.conns {
			local = x.local
		}
		f.mu.Unlock()
		if local == nil {
			if time.Now().After(deadline) {
				t.Fatal("no connection to the X server in the forward")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Fatal(err)
	}
	wmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := local.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if want := 2 * min(localSendBuffer, wmemMax); got != want {
		t.Errorf("SO_SNDBUF toward the X server = %d, want %d (2 x min(%d, wmem_max %d))", got, want, localSendBuffer, wmemMax)
	}
}

// deafServer is a local X socket stand-in that accepts connections and
// never reads them, as Xephyr does while another client holds a server
// grab.
func deafServer(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "X")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return path
}

// guestClients starts n guest clients in mode on port and returns a
// channel that gets each one's output lines, prefixed with its index.
func guestClients(t *testing.T, ctx context.Context, g *testguest.Guest, port, n int, mode string) <-chan string {
	t.Helper()
	lines := make(chan string, 4*n)
	for i := range n {
		cmd := guestPython(ctx, g, port, mode)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- strconv.Itoa(i) + " " + sc.Text()
			}
			lines <- strconv.Itoa(i) + " exit"
		}()
	}
	return lines
}

// TestForwardBounds: what a guest can make a forward hold is bounded. More
// connections than MaxConns are closed as they open; while the X server
// reads nothing (a grab), only MaxStalled connections may wait with data
// queued, and each further one is closed; each is noticed once.
func TestForwardBounds(t *testing.T) {
	g, _, c := realGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	noticed := func() (func(string), func() []string) {
		var mu sync.Mutex
		var msgs []string
		return func(m string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() },
			func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(msgs) }
	}

	t.Run("connection cap", func(t *testing.T) {
		note, notes := noticed()
		f, err := c.ForwardX(ctx, startEcho(t).path, 20, ForwardOptions{MaxConns: 3, Notice: note})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		lines := guestClients(t, ctx, g, 6000+f.Display, 5, "hold")
		// Every client connects (the guest's sshd accepts); the two beyond
		// the cap see their connection closed and exit.
		for exits := 0; exits < 2; {
			select {
			case l := <-lines:
				if strings.HasSuffix(l, " exit") {
					exits++
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("only %d of the 2 connections beyond the cap were closed", exits)
			}
		}
		f.mu.Lock()
		refused, open := f.refusedConns, len(f.conns)
		f.mu.Unlock()
		if refused != 2 || open != 3 {
			t.Errorf("%d refused, %d open; want 2 and 3", refused, open)
		}
		if got := notes(); len(got) != 1 || !strings.Contains(got[0], "more than 3 X connections") {
			t.Errorf("notices %q, want one about the cap", got)
		}
	})

	t.Run("stalled connections", func(t *testing.T) {
		note, notes := noticed()
		f, err := c.ForwardX(ctx, deafServer(t), 20, ForwardOptions{Notice: note})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const n = MaxStalled + 4
		lines := guestClients(t, ctx, g, 6000+f.Display, n, "stream")
		closed := 0
		for closed < n-MaxStalled {
			select {
			case l := <-lines:
				if strings.HasSuffix(l, " closed") {
					closed++
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("%d of %d streams closed, want %d", closed, n, n-MaxStalled)
			}
		}
		// A guest client sees its connection closed a moment before the
		// forward's goroutine for it has let it go: wait for that.
		var stalled, open int
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			f.mu.Lock()
			stalled, open = int(f.stalled.Load()), len(f.conns)
			f.mu.Unlock()
			if (stalled == MaxStalled && open == MaxStalled) || time.Now().After(deadline) {
				break
			}
		}
		if stalled != MaxStalled || open != MaxStalled {
			t.Errorf("%d connections wait, %d open; want %d and %d", stalled, open, MaxStalled, MaxStalled)
		}
		if got := notes(); len(got) != 1 || !strings.Contains(got[0], "did not read") {
			t.Errorf("notices %q, want one about the waiting connections", got)
		}
	})
}
