package guest

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestHostileExitStatus: a hostile sshd reports exit statuses no program can
// have and signal names full of escapes. Neither reaches the caller raw: a
// status outside 0..255 becomes 1 (256 would read as 0, success, once the
// launcher exits with it), and the signal name is made visible.
func TestHostileExitStatus(t *testing.T) {
	f := newFixture(t)
	c, err := dial(t, f.target, noAgent)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		cmd     string
		status  int
		claimed int
		text    string
	}{
		{"255 passes", "exit 255", 255, 0, "guest command exited with status 255"},
		{"256", "exit 256", 1, 256, "guest reported exit status 256, which no program can have (taken as 1)"},
		{"uint32 max", "exit 4294967295", 1, 1<<32 - 1, "guest reported exit status 4294967295, which no program can have (taken as 1)"},
		{"signal name with escapes", "exit-signal " + hex.EncodeToString([]byte("KILL\033]2;owned\007\n\x9b")), 128, 0,
			`guest command killed by signal KILL^[]2;owned^G^J\x9b`},
		{"known signal", "exit-signal " + hex.EncodeToString([]byte("TERM")), 128 + 15, 0, "guest command killed by signal TERM"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Run(ctx, tt.cmd, nil, nil, nil)
			var ee *ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("Run(%s) = %v, want *ExitError", tt.cmd, err)
			}
			if ee.Status != tt.status || ee.Claimed != tt.claimed || err.Error() != tt.text {
				t.Errorf("Run(%s) = %+v %q, want status %d, claimed %d, %q", tt.cmd, *ee, err, tt.status, tt.claimed, tt.text)
			}
		})
	}
	t.Run("Start and Wait", func(t *testing.T) {
		for _, raw := range []string{"256", "4294967295"} {
			p, err := c.Start(ctx, ProcSpec{Argv: []string{"exit-raw", raw}})
			if err != nil {
				t.Fatal(err)
			}
			st, err := p.Wait()
			var ee *ExitError
			if st != 1 || !errors.As(err, &ee) || !strings.Contains(err.Error(), "exit status "+raw+", which no program can have") {
				t.Errorf("Wait for a reported %s = %d, %v; want 1 and an *ExitError saying so", raw, st, err)
			}
		}
		p, err := c.Start(ctx, ProcSpec{Argv: []string{"exit-raw", "7"}})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := p.Wait(); st != 7 || err != nil {
			t.Errorf("Wait for a reported 7 = %d, %v; want 7, nil", st, err)
		}
	})
}

// TestPingCanceled: with a context already canceled Ping sends nothing and
// says so every time. It used to send the request and select between the
// answer and the context, a coin toss once the answer was ready (issue 9's
// flake in TestRealGuest/ping).
func TestPingCanceled(t *testing.T) {
	f := newFixture(t)
	c, err := dial(t, f.target, DialOptions{NoAgent: true, KeepAlive: -1}) // only Ping's requests
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	sent := f.srv.requests()
	if sent == 0 {
		t.Fatal("the server saw no request for the first Ping")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 200 {
		if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Ping %d with a canceled context: %v, want context.Canceled", i, err)
		}
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The last Ping's answer came after its request: any request a canceled
	// Ping sent came before and is counted.
	if got := f.srv.requests() - sent; got != 1 {
		t.Errorf("%d requests reached the guest for 200 canceled Pings and 1 live one, want 1", got)
	}
}
