package guest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// socketPair returns both ends of a real connection of the given network
// ("tcp" on loopback or "unix" in a temp dir), the dialled end first.
func socketPair(t testing.TB, network string) (net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	d, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

func TestRawIOWrapsOnlySockets(t *testing.T) {
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if _, ok := rawIO(p1).(*rawIOConn); ok {
		t.Fatal("net.Pipe has no descriptor, yet rawIO wrapped it")
	}
	for _, network := range []string{"tcp", "unix"} {
		c, _ := socketPair(t, network)
		if _, ok := rawIO(c).(*rawIOConn); !ok {
			t.Fatalf("%s: rawIO did not wrap %T", network, c)
		}
	}
}

// TestRawIOBulkBothWays sends more than any socket buffer holds in both
// directions at once through wrapped ends, so writes meet a full buffer
// (EAGAIN, wait, go on) and reads meet an empty one, and checks every byte.
func TestRawIOBulkBothWays(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			d, a := socketPair(t, network)
			a1, a2 := rawIO(d), rawIO(a)
			want1 := make([]byte, 8<<20+13)
			want2 := make([]byte, 5<<20+7)
			rand.Read(want1)
			rand.Read(want2)

			var wg sync.WaitGroup
			var got1, got2 []byte
			var err1, err2, werr1, werr2 error
			send := func(c net.Conn, b []byte, errp *error) {
				defer wg.Done()
				// Odd-sized writes, some bigger than the socket buffer.
				for len(b) > 0 {
					n := min(len(b), 700_001)
					if _, err := c.Write(b[:n]); err != nil {
						*errp = err
						return
					}
					b = b[n:]
				}
				*errp = c.(*rawIOConn).CloseWrite()
			}
			recv := func(c net.Conn, got *[]byte, errp *error) {
				defer wg.Done()
				*got, *errp = io.ReadAll(c)
			}
			wg.Add(4)
			go send(a1, want1, &werr1)
			go send(a2, want2, &werr2)
			go recv(a2, &got1, &err1)
			go recv(a1, &got2, &err2)
			wg.Wait()
			for _, err := range []error{werr1, werr2, err1, err2} {
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got1, want1) || !bytes.Equal(got2, want2) {
				t.Fatalf("data differs: got %d and %d bytes, want %d and %d", len(got1), len(got2), len(want1), len(want2))
			}
		})
	}
}

func TestRawIOEOFAndZeroRead(t *testing.T) {
	d, a := socketPair(t, "unix")
	r := rawIO(d)
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
	if _, err := a.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "last" {
		t.Fatalf("ReadAll = %q, %v; want \"last\", nil", got, err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestRawIODeadline(t *testing.T) {
	d, _ := socketPair(t, "tcp")
	r := rawIO(d)
	if err := r.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := r.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v; want a timeout", err)
	}

	// A write that fills the buffer waits, and its deadline ends it too.
	// The buffer is made before the deadline is set (zeroing 64 MiB under
	// -race on a slow machine took longer than a short deadline, and a
	// deadline already past writes nothing, as net.Conn's Write does), and
	// the deadline leaves room for the first write(2) on a busy machine.
	big := make([]byte, 64<<20)
	if err := r.SetWriteDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := r.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write nobody reads: %d bytes, %v; want a timeout", n, err)
	}
	if n == 0 || n >= 64<<20 {
		t.Fatalf("Write reported %d bytes written; want some, not all", n)
	}
}

func TestRawIOCloseWakesReader(t *testing.T) {
	d, _ := socketPair(t, "unix")
	r := rawIO(d)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it park in the poller
	r.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a parked Read")
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed conn: %v; want net.ErrClosed", err)
	}
}

func TestRawIOWriteToClosedPeer(t *testing.T) {
	d, a := socketPair(t, "unix")
	w := rawIO(d)
	a.Close()
	var err error
	for range 100 { // the first write may still land in the buffer
		if _, err = w.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	var oe *net.OpError
	if err == nil || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a closed peer: %v; want a *net.OpError from write", err)
	}
}
