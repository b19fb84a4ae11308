package guest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xvmview/xvmview/internal/testguest"
)

// realGuest starts a test guest (a real sshd in a network namespace; skipped
// unless root, failed when CI=true) and dials it the way xvmview does: from
// the guest's ssh_config through Resolve.
func realGuest(t *testing.T) (*testguest.Guest, Target, *Client) {
	t.Helper()
	g := testguest.Start(t, testguest.Options{})
	tg, err := Resolve(g.Alias, Overrides{}, Config{SSHConfigFile: g.SSHConfig, Home: t.TempDir()})
	if err != nil {
		t.Fatalf("Resolve(%s): %v", g.Alias, err)
	}
	return g, tg, dialReal(t, tg)
}

func dialReal(t *testing.T, tg Target) *Client {
	t.Helper()
	c, err := dial(t, tg, noAgent)
	if err != nil {
		t.Fatalf("Dial(%+v): %v", tg, err)
	}
	return c
}

// eventually polls cond every 50 ms until it holds or 20 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leftovers lists the guest user's processes other than sshd's
// per-connection ones.
func leftovers(t *testing.T, g *testguest.Guest) []string {
	t.Helper()
	ps, err := g.Processes()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		cl := strings.Join(p.Cmdline, " ")
		if strings.HasPrefix(cl, "sshd:") {
			continue
		}
		out = append(out, cl)
	}
	return out
}

// waitSessionEnd waits until p's session has ended after what; a process
// outside the wrapper's reach that holds the session's output open keeps it
// from ending.
func waitSessionEnd(t *testing.T, g *testguest.Guest, p *Process, what string) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the session did not end after %s; left on the guest: %q", what, leftovers(t, g))
	}
}

func running(t *testing.T, g *testguest.Guest, cmdline string) bool {
	return slices.Contains(leftovers(t, g), cmdline)
}

func TestRealGuest(t *testing.T) {
	g, tg, c := realGuest(t)
	ctx := context.Background()

	t.Run("resolve", func(t *testing.T) {
		want := Target{Alias: g.Alias, HostName: g.Addr, Port: g.Port, User: g.User,
			IdentityFiles: []string{g.IdentityFile}, KnownHostsFiles: []string{g.KnownHosts}}
		if !slices.Equal(tg.IdentityFiles, want.IdentityFiles) || !slices.Equal(tg.KnownHostsFiles, want.KnownHostsFiles) ||
			tg.Alias != want.Alias || tg.HostName != want.HostName || tg.Port != want.Port || tg.User != want.User {
			t.Errorf("Resolve = %+v, want %+v", tg, want)
		}
		if got := c.LocalIP().String(); got != g.HostAddr {
			t.Errorf("LocalIP = %s, want %s (the host end of the veth)", got, g.HostAddr)
		}
	})

	t.Run("stdin to cat", func(t *testing.T) {
		in := make([]byte, 1<<20)
		for i := range in {
			in[i] = byte(rand.Uint32())
		}
		var out bytes.Buffer
		if err := c.Run(ctx, "cat", bytes.NewReader(in), &out, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Errorf("cat returned %d bytes that differ from the %d sent", out.Len(), len(in))
		}
	})

	t.Run("ping", func(t *testing.T) {
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Ping with a canceled context: %v, want context.Canceled", err)
		}
	})

	t.Run("exit status", func(t *testing.T) {
		var ee *ExitError
		if err := c.Run(ctx, "exit 3", nil, nil, nil); !errors.As(err, &ee) || ee.Status != 3 {
			t.Fatalf("Run(exit 3) = %v, want *ExitError{Status: 3}", err)
		}
	})

	t.Run("quoted arguments", func(t *testing.T) {
		args := []string{"it's", "$(id)", "`id`", "a\nb", "", "*", "ü\xff", "\\"}
		cmd, err := Command([]string{"XVM_X=$HOME 'q'"}, append([]string{"sh", "-c", `printf '%s\0' "$XVM_X" "$@"`, "sh"}, args...))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := c.Run(ctx, cmd, nil, &out, nil); err != nil {
			t.Fatal(err)
		}
		want := strings.Join(append([]string{"$HOME 'q'"}, args...), "\x00") + "\x00"
		if out.String() != want {
			t.Errorf("guest printed %q, want %q", out.String(), want)
		}
	})

	t.Run("start env output status", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		p, err := c.Start(ctx, ProcSpec{
			Env:    []string{"DISPLAY=10.213.0.1:7", "XVM_Q=a 'b'"},
			Argv:   []string{"sh", "-c", `printf '%s|%s' "$DISPLAY" "$XVM_Q"; printf oops >&2; exit 3`},
			Stdout: &stdout, Stderr: &stderr,
		})
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait()
		if st != 3 || err != nil {
			t.Errorf("Wait = %d, %v; want 3, nil", st, err)
		}
		if got := stdout.String(); got != "10.213.0.1:7|a 'b'" {
			t.Errorf("stdout = %q", got)
		}
		if got := stderr.String(); got != "oops" {
			t.Errorf("stderr = %q", got)
		}
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close after exit: %v", err)
		}
	})

	t.Run("process group", func(t *testing.T) {
		// The program must run in the process group the wrapper kills: the
		// wrapper's, which sshd made a session leader.
		var out bytes.Buffer
		p, err := c.Start(ctx, ProcSpec{Argv: []string{"sh", "-c", `cut -d' ' -f5,6 /proc/$$/stat`}, Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := p.Wait(); st != 0 || err != nil {
			t.Fatalf("Wait = %d, %v", st, err)
		}
		f := strings.Fields(out.String())
		if len(f) != 2 || f[0] != f[1] {
			t.Errorf("pgrp and session of the program = %q, want equal (group leader = session leader)", out.String())
		}
	})

	for _, tt := range []struct {
		name string
		argv []string
		seen string // a cmdline that shows the program runs
	}{
		{"close kills program", []string{"sleep", "1001"}, "sleep 1001"},
		{"close kills background children", []string{"sh", "-c", "sleep 1002 & sleep 1003"}, "sleep 1002"},
		{"close kills a program ignoring TERM", []string{"sh", "-c", "trap '' TERM; sleep 1004 & wait"}, "sleep 1004"},
		// Left the process group: found by the mark in its environment.
		{"close kills what left the group", []string{"sh", "-c", "setsid sleep 1010 & sleep 1011"}, "sleep 1010"},
		{"close kills a daemon ignoring TERM", []string{"sh", "-c", "setsid sh -c 'trap \"\" TERM; sleep 1012 & wait' & sleep 1013"}, "sleep 1012"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Start(ctx, ProcSpec{Argv: tt.argv, Grace: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, tt.seen+" runs", func() bool { return running(t, g, tt.seen) })
			if err := p.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
			waitSessionEnd(t, g, p, "Close")
			eventually(t, "no process is left", func() bool { return len(leftovers(t, g)) == 0 })
			if err := p.Close(ctx); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}

	t.Run("close does not wait out the grace", func(t *testing.T) {
		// Everything ends on SIGTERM, so the guest has nothing to wait
		// for: Close must succeed long before the 60 s grace is up.
		p, err := c.Start(ctx, ProcSpec{Argv: []string{"sh", "-c", "setsid sleep 1016 & sleep 1017"}, Grace: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "sleep 1017 runs", func() bool { return running(t, g, "sleep 1017") })
		closeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := p.Close(closeCtx); err != nil {
			t.Errorf("Close with a 60 s grace and 20 s to spare: %v", err)
		}
		eventually(t, "no process is left", func() bool { return len(leftovers(t, g)) == 0 })
	})

	t.Run("close with less time than the grace", func(t *testing.T) {
		// After a signal the launcher has 1.5 s for its whole teardown: a
		// daemon that ignores TERM under a 60 s grace must still be
		// KILLed in the time Close is given, and Close succeed.
		p, err := c.Start(ctx, ProcSpec{Argv: []string{"sh", "-c", "setsid sh -c 'trap \"\" TERM; sleep 1018 & wait' & sleep 1019"}, Grace: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "sleep 1018 runs", func() bool { return running(t, g, "sleep 1018") })
		closeCtx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		if err := p.Close(closeCtx); err != nil {
			t.Errorf("Close with 1.5 s to spare and a 60 s grace: %v", err)
		}
		if closeCtx.Err() != nil {
			t.Errorf("Close took its whole 1.5 s")
		}
		eventually(t, "no process is left", func() bool { return len(leftovers(t, g)) == 0 })
	})

	t.Run("exit leaves nothing behind", func(t *testing.T) {
		p, err := c.Start(ctx, ProcSpec{Argv: []string{"sh", "-c", "sleep 1005 & setsid sleep 1014 & exit 4"}, Grace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		waitSessionEnd(t, g, p, "the program exited")
		if st, err := p.Wait(); st != 4 || err != nil {
			t.Errorf("Wait = %d, %v; want 4, nil", st, err)
		}
		eventually(t, "no process is left", func() bool { return len(leftovers(t, g)) == 0 })
	})

	t.Run("dropped connection", func(t *testing.T) {
		c2 := dialReal(t, tg)
		p, err := c2.Start(ctx, ProcSpec{Argv: []string{"sh", "-c", "sleep 1006 & setsid sleep 1015 & sleep 1007"}, Grace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "sleep 1007 runs", func() bool { return running(t, g, "sleep 1007") })
		if err := g.KillSessions(); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []<-chan struct{}{c2.Done(), p.Done()} {
			select {
			case <-ch:
			case <-time.After(20 * time.Second):
				t.Fatal("Client.Done or Process.Done did not fire after the connection dropped")
			}
		}
		if _, err := p.Wait(); err == nil {
			t.Error("Wait after a dropped connection returned no error")
		}
		eventually(t, "no process is left", func() bool { return len(leftovers(t, g)) == 0 })
	})
}

// BenchmarkLogin compares a Go login plus one `true` session with
// `ssh -F SSHCONFIG ALIAS true` against the same real guest.
func BenchmarkLogin(b *testing.B) {
	g := testguest.Start(b, testguest.Options{})
	tg, err := Resolve(g.Alias, Overrides{}, Config{SSHConfigFile: g.SSHConfig, Home: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			c, err := Dial(ctx, tg, noAgent)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Run(ctx, "true", nil, nil, nil); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("openssh", func(b *testing.B) {
		ssh, err := exec.LookPath("ssh")
		if err != nil {
			b.Skip("no ssh client")
		}
		for b.Loop() {
			if out, err := exec.CommandContext(ctx, ssh, "-F", g.SSHConfig, g.Alias, "true").CombinedOutput(); err != nil {
				b.Fatalf("ssh: %v: %s", err, out)
			}
		}
	})
	b.Run("openssh-curve25519", func(b *testing.B) {
		ssh, err := exec.LookPath("ssh")
		if err != nil {
			b.Skip("no ssh client")
		}
		for b.Loop() {
			if out, err := exec.CommandContext(ctx, ssh, "-F", g.SSHConfig, "-o", "KexAlgorithms=curve25519-sha256", g.Alias, "true").CombinedOutput(); err != nil {
				b.Fatalf("ssh: %v: %s", err, out)
			}
		}
	})
}
