package testguest

import "sync"

// LogBuffer keeps the last max bytes written to it; safe for concurrent use,
// so a test can read a child's output while the child still writes.
type LogBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// NewLogBuffer returns a LogBuffer that keeps the last max bytes.
func NewLogBuffer(max int) *LogBuffer { return &LogBuffer{max: max} }

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if over := len(l.b) - l.max; over > 0 {
		l.b = append(l.b[:0], l.b[over:]...)
	}
	return len(p), nil
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// tail returns at most the last n bytes, for error messages.
func (l *LogBuffer) tail(n int) string {
	s := l.String()
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
