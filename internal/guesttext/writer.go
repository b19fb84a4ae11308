package guesttext

import (
	"bytes"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// WriterLineMax is how many bytes of one line a Writer holds: a longer line
// is broken into lines of at most this many bytes of the guest's text.
const WriterLineMax = 4096

// Writer passes a stream of the guest's output on to another writer line by
// line: each line made visible as Block does (tabs kept, CR LF read as a line
// end), prefixed with "[LABEL] " so it is plain the line came from the guest,
// and ended with a newline. A partial line is held until its newline comes,
// Flush or Close is called, or it reaches WriterLineMax bytes.
//
// Past the volume cap Writer writes one line saying the output was cut and
// drops the rest. Its Write never fails and never blocks longer than the
// writer it wraps: after that writer's first error (a closed pipe, as in
// `xvmview run web | head`) everything is dropped, so a failing terminal
// cannot stall the guest's program once the SSH channel's window fills.
//
// A Writer is safe for concurrent use; lines written at once never mix.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	max     int64 // the volume cap, when capped
	capped  bool
	n       int64  // bytes passed to w
	held    []byte // the partial line
	out     []byte // reused for each line written
	cut     bool
	failed  bool
	dropped int64
	// stop is Stop's budget plus one (0: not stopped), read between
	// lines without g.mu; applyStop turns it into the cap once.
	stop    atomic.Int64
	applied bool // Stop's budget is in max
	stopped bool // the cap is Stop's
}

// NewWriter returns a Writer that writes to w, labelling each line with
// label (made visible with Line; empty for no label) and passing at most
// maxBytes bytes on, not counting the one line that says the rest was cut;
// maxBytes <= 0 means no volume cap.
func NewWriter(w io.Writer, label string, maxBytes int64) *Writer {
	g := &Writer{w: w, max: maxBytes, capped: maxBytes > 0}
	if label != "" {
		g.prefix = "[" + Line(label) + "] "
	}
	return g
}

// Write takes p whole and returns len(p), nil, whatever happens to it.
func (g *Writer) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		g.applyStop()
		if g.cut || g.failed {
			g.dropped += int64(len(p))
			break
		}
		if i := bytes.IndexByte(p, '\n'); i >= 0 && len(g.held)+i <= WriterLineMax {
			g.held = append(g.held, p[:i]...)
			g.line(bytes.TrimSuffix(g.held, []byte{'\r'}), len(g.held)+1)
			g.held = g.held[:0]
			p = p[i+1:]
			continue
		}
		k := min(WriterLineMax-len(g.held), len(p))
		g.held = append(g.held, p[:k]...)
		p = p[k:]
		if len(g.held) >= WriterLineMax {
			cut := runeBoundary(g.held)
			g.line(g.held[:cut], cut)
			g.held = append(g.held[:0], g.held[cut:]...)
		}
	}
	return n, nil
}

// Flush writes the partial line held, if any, as a line of its own.
func (g *Writer) Flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.applyStop()
	if len(g.held) > 0 && !g.cut && !g.failed {
		g.line(g.held, len(g.held))
	} else {
		g.dropped += int64(len(g.held))
	}
	g.held = g.held[:0]
}

// Close flushes the partial line; later writes are dropped. It does not close
// the writer it wraps and always returns nil.
func (g *Writer) Close() error {
	g.Flush()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = true
	return nil
}

// Stop lets at most budget more bytes through (the last lines a program
// prints as it ends), then writes one line saying the output was cut and
// drops the rest. It does not wait for a Write under way, and takes effect
// inside it too, within writePiece bytes: after a signal, the guest's output
// still queued (an SSH channel's window, 2 MiB) must not keep the launcher
// writing to a slow terminal. Only the first call counts.
func (g *Writer) Stop(budget int64) {
	g.stop.CompareAndSwap(0, min(max(0, budget), math.MaxInt64/4)+1)
}

// writePiece is the most a Writer passes to its writer in one call: a line
// made visible can be four times WriterLineMax, and Stop is checked between
// pieces.
const writePiece = 1 << 10

// applyStop turns a Stop into the volume cap it means. g.mu is held.
func (g *Writer) applyStop() {
	if g.applied {
		return
	}
	b := g.stop.Load()
	if b == 0 {
		return
	}
	g.applied = true
	if at := g.n + b - 1; !g.capped || at < g.max {
		g.max, g.capped, g.stopped = at, true, true
	}
}

// Dropped returns how many bytes of the guest's output were dropped: past
// the volume cap, after the wrapped writer failed, or after Close or Stop.
func (g *Writer) Dropped() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dropped
}

// line writes one line of the guest's text, which stands for raw bytes of
// the guest's output (for Dropped), or the cut notice when it would pass the
// volume cap. It writes in pieces and checks Stop between them: a line that
// the cap ends halfway is ended there, followed by the notice. g.mu is held.
func (g *Writer) line(text []byte, raw int) {
	b := append(g.out[:0], g.prefix...)
	b = appendBlockLine(b, text)
	b = append(b, '\n')
	g.out = b
	for first := true; len(b) > 0; first = false {
		if !first {
			g.applyStop()
		}
		if g.capped && g.n+int64(len(b)) > g.max {
			g.dropped += int64(raw) // a line cut short counts whole
			var notice []byte
			if !first {
				notice = append(notice, '\n')
			}
			g.write(g.cutNotice(notice))
			g.cut = true
			return
		}
		k := min(len(b), writePiece)
		if !g.write(b[:k]) {
			return
		}
		b = b[k:]
	}
}

// write passes b on; false once the writer failed. g.mu is held.
func (g *Writer) write(b []byte) bool {
	m, err := g.w.Write(b)
	g.n += int64(m)
	if err != nil {
		g.failed = true
		return false
	}
	return true
}

// cutNotice appends the line saying the rest of the output is dropped.
func (g *Writer) cutNotice(b []byte) []byte {
	b = append(b, "xvmview: "...)
	if g.prefix != "" {
		b = append(b, g.prefix[:len(g.prefix)-1]...)
		b = append(b, ' ')
	}
	b = append(b, "guest output cut after "...)
	b = strconv.AppendInt(b, g.n, 10)
	if g.stopped {
		return append(b, " bytes as the session ends; the rest is dropped\n"...)
	}
	return append(b, " bytes; the rest is dropped\n"...)
}

// appendBlockLine appends one line of text (no newline in it) made visible
// with tabs kept. Unlike Line it does not cap: the Writer's lines are bounded
// by WriterLineMax already.
func appendBlockLine(b []byte, text []byte) []byte {
	b, _ = appendVisible(b, string(text), keepTab, math.MaxInt)
	return b
}

// runeBoundary returns where to break a full line: at its end, or before a
// UTF-8 sequence that its last bytes begin but do not complete, so a
// character split across writes is not made visible as invalid bytes.
func runeBoundary(b []byte) int {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return len(b)
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-k:]) {
				return len(b) - k
			}
			return len(b)
		}
	}
	return len(b)
}
