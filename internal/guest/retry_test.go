package guest

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// dropFirst makes the server close its next n connections before the
// handshake, as sshd does beyond MaxStartups; reset sends RST instead of
// a line and EOF.
func (s *testServer) dropFirst(n int, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop, s.dropReset = n, reset
}

func (s *testServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func TestDialRetriesDroppedHandshake(t *testing.T) {
	for _, reset := range []bool{false, true} {
		name := map[bool]string{false: "eof", true: "reset"}[reset]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.srv.dropFirst(3, reset)
			c, err := dial(t, f.target, noAgent)
			if err != nil {
				t.Fatalf("Dial with the first 3 handshakes dropped: %v", err)
			}
			if err := c.Run(context.Background(), "true", nil, io.Discard, io.Discard); err != nil {
				t.Errorf("Run on the retried connection: %v", err)
			}
			if n := f.srv.accepted(); n != 4 {
				t.Errorf("server saw %d connections, want 4 (3 dropped, then the login)", n)
			}
		})
	}
}

func TestDialDroppedGivesUp(t *testing.T) {
	f := newFixture(t)
	f.srv.dropFirst(1<<30, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := Dial(ctx, f.target, noAgent)
	var de *HandshakeDroppedError
	if !errors.As(err, &de) {
		t.Fatalf("Dial against a server that drops every handshake: %v, want *HandshakeDroppedError", err)
	}
	if de.Addr != f.target.Addr() || de.Tries < 2 || de.Tries != f.srv.accepted() {
		t.Errorf("error %+v: want Addr %s and Tries = the %d connections made (at least 2)", de, f.target.Addr(), f.srv.accepted())
	}
	if !closedEarly(err) {
		t.Errorf("error %v: want it to wrap the EOF or reset", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Dial returned only after its deadline: it should give up when the next pause would not fit")
	}
}

func TestDialDroppedCanceled(t *testing.T) {
	f := newFixture(t)
	f.srv.dropFirst(1<<30, false)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := Dial(ctx, f.target, noAgent)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial canceled while retrying: %v, want context.Canceled", err)
	}
}

// A retried dial checks the host key as strictly as the first: an unknown
// key ends the retries with *HostKeyError.
func TestDialRetryKeepsHostKeyStrict(t *testing.T) {
	f := newFixture(t)
	other, _ := newKey(t)
	f.target.KnownHostsFiles = []string{knownHostsFile(t, f.srv.addr(), other.PublicKey())}
	f.srv.dropFirst(2, false)
	_, err := dial(t, f.target, noAgent)
	var he *HostKeyError
	if !errors.As(err, &he) || !he.Changed {
		t.Fatalf("Dial: %v, want *HostKeyError (changed)", err)
	}
	if n := f.srv.accepted(); n != 3 {
		t.Errorf("server saw %d connections, want 3: two dropped, one refused for its key, no retry after that", n)
	}
	if f.srv.attempts() != 0 {
		t.Errorf("keys were offered to a server with a wrong host key")
	}
}

func TestClosedEarly(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{errors.Join(errors.New("ssh: handshake failed"), io.EOF), true},
		{syscall.ECONNRESET, true},
		{errors.New("ssh: unable to authenticate"), false},
		{syscall.ECONNREFUSED, false},
	} {
		if got := closedEarly(tc.err); got != tc.want {
			t.Errorf("closedEarly(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	var b backoff
	want := firstHandshakeWait
	for range 8 {
		w := b.next()
		if w < want/2 || w >= want*3/2 {
			t.Errorf("wait %v outside [%v, %v)", w, want/2, want*3/2)
		}
		want = min(2*want, maxHandshakeWait)
	}
}

// TestRealConcurrentDials: 16 logins at once to one real sshd all succeed,
// with OpenSSH's default MaxStartups (10:30:100, which drops some logins
// beyond 10 in progress, at random) and with a tight one that drops many.
func TestRealConcurrentDials(t *testing.T) {
	for _, tc := range []struct {
		name, maxStartups string
		mustDrop          bool
	}{
		{"default", "MaxStartups 10:30:100", false},
		{"tight", "MaxStartups 3:50:6", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testguest.Start(t, testguest.Options{SSHDConfig: []string{tc.maxStartups}})
			tg, err := Resolve(g.Alias, Overrides{}, Config{SSHConfigFile: g.SSHConfig, Home: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			const n = 16
			for round := range 2 {
				errs := make(chan error, n)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range n {
					wg.Go(func() {
						<-start
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						defer cancel()
						c, err := Dial(ctx, tg, noAgent)
						if err == nil {
							err = c.Run(ctx, "true", nil, io.Discard, io.Discard)
							c.Close()
						}
						errs <- err
					})
				}
				close(start)
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Errorf("round %d: one of %d dials at once: %v", round, n, err)
					}
				}
			}
			// sshd logs each connection it drops.
			dropped := strings.Count(g.SSHDLog(), "past MaxStartups")
			t.Logf("sshd dropped %d connections; every dial succeeded", dropped)
			if tc.mustDrop && dropped == 0 {
				t.Errorf("sshd with %q dropped no connection: the test did not exercise the retry", tc.maxStartups)
			}
		})
	}
}
