package guesttext

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
)

func TestWriter(t *testing.T) {
	long := strings.Repeat("y", WriterLineMax)
	tests := []struct {
		name   string
		label  string
		max    int64
		writes []string
		want   string
	}{
		{"nothing", "web", 0, nil, ""},
		{"one line", "web", 0, []string{"hello\n"}, "[web] hello\n"},
		{"no label", "", 0, []string{"hello\n"}, "hello\n"},
		{"label made visible", "we\033b", 0, []string{"x\n"}, "[we^[b] x\n"},
		{"issue 9 escapes", "web", 0, []string{hostile + "\n"}, "[web] ^[]2;TITLE^G^[[31mRED^[[6n\n"},
		{"split across writes", "web", 0, []string{"hel", "lo\nwor", "ld\n"}, "[web] hello\n[web] world\n"},
		{"escape split across writes", "web", 0, []string{"\033", "[6n\n"}, "[web] ^[[6n\n"},
		{"rune split across writes", "web", 0, []string{"caf\xc3", "\xa9\n"}, "[web] café\n"},
		{"tab kept", "web", 0, []string{"a\tb\n"}, "[web] a\tb\n"},
		{"CR LF is a line end", "web", 0, []string{"a\r\nb\r", "\n"}, "[web] a\n[web] b\n"},
		{"lone CR visible", "web", 0, []string{"50%\r100%\n"}, "[web] 50%^M100%\n"},
		{"empty lines kept", "web", 0, []string{"\n\n"}, "[web] \n[web] \n"},
		{"partial line held until Close", "web", 0, []string{"no newline"}, "[web] no newline\n"},
		{"long line broken", "w", 0, []string{long + "z\n"}, "[w] " + long + "\n[w] z\n"},
		{"long line not broken inside a rune", "w", 0, []string{long[:WriterLineMax-1] + "é\n"}, "[w] " + long[:WriterLineMax-1] + "\n[w] é\n"},
		{"volume cap", "web", 22, []string{"1234\n", "5678\n", "9abc\n"}, "[web] 1234\n[web] 5678\nxvmview: [web] guest output cut after 22 bytes; the rest is dropped\n"},
		{"volume cap on the first line", "", 3, []string{"1234\nabc\n"}, "xvmview: guest output cut after 0 bytes; the rest is dropped\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(&out, tt.label, tt.max)
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
			checkSafe(t, out.String(), keepTab|keepNewline, 1<<30)
		})
	}
}

func TestWriterFlush(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, "web", 0)
	_, _ = w.Write([]byte("prompt> "))
	if out.Len() != 0 {
		t.Fatalf("a partial line was written before Flush: %q", out.String())
	}
	w.Flush()
	_, _ = w.Write([]byte("next\n"))
	if got, want := out.String(), "[web] prompt> \n[web] next\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

type failWriter struct{ calls int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.calls++
	return 0, errors.New("broken pipe")
}

// A writer that fails must neither fail the guest's stream nor be written to
// again (xvmview run web | head).
func TestWriterFailingWriter(t *testing.T) {
	f := &failWriter{}
	w := NewWriter(f, "web", 0)
	var after int64
	for i := range 100 {
		s := fmt.Sprintf("line %d\n", i)
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v, want %d, nil", n, err, len(s))
		}
		if i > 0 {
			after += int64(len(s))
		}
	}
	if f.calls != 1 {
		t.Errorf("failing writer called %d times, want 1", f.calls)
	}
	if got := w.Dropped(); got != after {
		t.Errorf("Dropped = %d, want %d (all after the failure)", got, after)
	}
}

func TestWriterCapDrops(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, "web", 1000)
	line := strings.Repeat("x", 99) + "\n"
	for range 1000 {
		_, _ = w.Write([]byte(line))
	}
	_ = w.Close()
	if out.Len() > 1000+100 {
		t.Errorf("wrote %d bytes past a 1000-byte cap", out.Len())
	}
	if got := strings.Count(out.String(), "output cut"); got != 1 {
		t.Errorf("%d cut lines, want 1:\n%s", got, out.String())
	}
	if w.Dropped() < 1000*100-1000 {
		t.Errorf("Dropped = %d", w.Dropped())
	}
}

// Concurrent writers (the app's stdout and stderr share a terminal) never mix
// inside a line. Run with -race.
func TestWriterConcurrent(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, "web", 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				_, _ = fmt.Fprintf(w, "g%d-%d\n", g, i)
			}
		})
	}
	wg.Wait()
	_ = w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, l := range lines {
		var g, i int
		if n, _ := fmt.Sscanf(l, "[web] g%d-%d", &g, &i); n != 2 {
			t.Fatalf("mixed line %q", l)
		}
	}
}

func FuzzWriter(f *testing.F) {
	f.Add([]byte(hostile+"\n"+hostile), uint16(7), int64(100), uint8(0), uint16(0))
	f.Add([]byte("a\r\nb\rc\x9b\u202e\n"), uint16(1), int64(0), uint8(3), uint16(5))
	f.Add(bytes.Repeat([]byte("é"), 5000), uint16(4095), int64(1<<20), uint8(1), uint16(4096))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint16, max int64, stopAt uint8, budget uint16) {
		max %= 1 << 20
		var out bytes.Buffer
		w := NewWriter(&out, "fuzz\n", max)
		step := int(chunk)%(len(in)+1) + 1
		limit := 1 << 30
		if max > 0 {
			limit = int(max) + 100 // the one cut line
		}
		for i := 0; len(in) > 0; i++ {
			if stopAt > 0 && i == int(stopAt) {
				w.Stop(int64(budget))
				limit = min(limit, out.Len()+int(budget)+100)
			}
			k := min(step, len(in))
			_, _ = w.Write(in[:k])
			in = in[k:]
		}
		_ = w.Close()
		checkSafe(t, out.String(), keepTab|keepNewline, limit)
		for _, l := range strings.SplitAfter(out.String(), "\n") {
			if l != "" && !strings.HasPrefix(l, "[fuzz^J] ") && !strings.HasPrefix(l, "xvmview: [fuzz^J] guest output cut") {
				t.Fatalf("unlabelled line %q", l)
			}
		}
	})
}

// BenchmarkWriter: the cost of the Writer on an app's ordinary output (80
// column lines of ASCII, in 32 KiB writes as an SSH channel delivers them)
// and on a flood of escapes.
func BenchmarkWriter(b *testing.B) {
	for _, bc := range []struct {
		name string
		line string
	}{
		{"plain", strings.Repeat("x", 79) + "\n"},
		{"escapes", strings.Repeat("\033[31m", 16) + "\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			chunk := []byte(strings.Repeat(bc.line, 32<<10/len(bc.line)))
			w := NewWriter(io.Discard, "web", 0)
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				_, _ = w.Write(chunk)
			}
		})
	}
}

// gateWriter blocks each Write until gate is closed, and tells calls.
type gateWriter struct {
	gate  chan struct{}
	calls chan struct{}
	out   bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	select {
	case g.calls <- struct{}{}:
	default:
	}
	<-g.gate
	return g.out.Write(p)
}

// Stop takes effect between two lines of a Write under way, without
// waiting for the slow writer to take that Write's rest: it lets its budget
// through, says the output was cut, and drops the rest (after a signal, the
// guest's queued output must not keep the launcher writing to a slow
// terminal, but a program's last words are shown).
func TestWriterStop(t *testing.T) {
	g := &gateWriter{gate: make(chan struct{}), calls: make(chan struct{}, 1)}
	w := NewWriter(g, "web", 0)
	chunk := strings.Repeat("line\n", 1000) + "partial"
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = w.Write([]byte(chunk))
	}()
	<-g.calls       // the first line is being written
	w.Stop(12)      // room for one more line of 11 bytes
	w.Stop(1 << 20) // only the first Stop counts
	close(g.gate)
	<-done
	if got, want := w.Dropped(), int64(len(chunk)-2*len("line\n")); got != want {
		t.Errorf("Dropped = %d, want %d: all but the two lines passed", got, want)
	}
	if n, err := w.Write([]byte("after\n")); n != 6 || err != nil {
		t.Fatalf("Write after Stop = %d, %v", n, err)
	}
	_ = w.Close()
	want := "[web] line\n[web] line\nxvmview: [web] guest output cut after 22 bytes as the session ends; the rest is dropped\n"
	if got := g.out.String(); got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

// A line made visible can be 16 KiB (4096 bytes of C1 controls): Stop cuts
// it within a piece instead of letting a slow terminal take it all.
func TestWriterStopLongLine(t *testing.T) {
	g := &gateWriter{gate: make(chan struct{}), calls: make(chan struct{}, 1)}
	w := NewWriter(g, "web", 0)
	line := strings.Repeat("\x9b", WriterLineMax) + "\n"
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = w.Write([]byte(line))
	}()
	<-g.calls // the line's first piece is being written
	w.Stop(0)
	close(g.gate)
	<-done
	_ = w.Close()
	out := g.out.String()
	first, notice, ok := strings.Cut(out, "\n")
	if !ok || len(first) != writePiece || !strings.HasPrefix(first, "[web] ") {
		t.Fatalf("wrote %d bytes before the first newline, want one piece of %d: %.80q", len(first), writePiece, out)
	}
	if want := fmt.Sprintf("xvmview: [web] guest output cut after %d bytes as the session ends; the rest is dropped\n", writePiece); notice != want {
		t.Errorf("then %q, want %q", notice, want)
	}
	checkSafe(t, out, keepTab|keepNewline, 1<<20)
}

func TestWriterStopCases(t *testing.T) {
	for _, tt := range []struct {
		name   string
		max    int64
		before string // written before Stop
		budget int64
		after  string
		want   string
	}{
		{"nothing passes", 0, "", 0, "a\n", "xvmview: [web] guest output cut after 0 bytes as the session ends; the rest is dropped\n"},
		{"a goodbye passes", 0, "x\n", 100, "bye\nbye\n", "[web] x\n[web] bye\n[web] bye\n"},
		{"partial line held is flushed within the budget", 0, "", 100, "no newline", "[web] no newline\n"},
		{"negative budget is none", 0, "", -5, "a\n", "xvmview: [web] guest output cut after 0 bytes as the session ends; the rest is dropped\n"},
		{"the volume cap comes first", 10, "", 100, "12345\n", "xvmview: [web] guest output cut after 0 bytes; the rest is dropped\n"},
		{"the stop comes before the cap", 1000, "x\n", 0, "y\n", "[web] x\nxvmview: [web] guest output cut after 8 bytes as the session ends; the rest is dropped\n"},
		{"the largest budget", 0, "", math.MaxInt64, "a\nb", "[web] a\n[web] b\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(&out, "web", tt.max)
			_, _ = w.Write([]byte(tt.before))
			w.Stop(tt.budget)
			_, _ = w.Write([]byte(tt.after))
			_ = w.Close()
			if got := out.String(); got != tt.want {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}
