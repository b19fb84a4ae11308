package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xvmview/xvmview/internal/guesttext"
)

// Session logs: one file per launch in $XDG_STATE_HOME/xvmview/, holding the
// phases with their times, notices, the guest's and Xephyr's stderr and how
// the session ended. The cookie never reaches them: nothing that prints it
// exists, and its type redacts itself.

const (
	maxLogSize = 1 << 20 // per session; past it the log says so and stops growing
	keepLogs   = 30      // per profile
)

// sessionLog is an append-only, size-capped log file safe for concurrent use.
type sessionLog struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	n       int
	capped  bool
	started time.Time
}

// openSessionLog creates DIR/PROFILE-YYYYmmdd-HHMMSS-PID.log (0600; DIR 0700)
// and removes the oldest logs of the profile beyond keepLogs.
func openSessionLog(dir, profile string) (*sessionLog, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	now := time.Now()
	name := fmt.Sprintf("%s-%s-%d.log", profile, now.Format("20060102-150405"), os.Getpid())
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create session log: %w", err)
	}
	pruneLogs(dir, profile)
	l := &sessionLog{f: f, path: path, started: now}
	l.printf("xvmview %s: session of profile %s started %s", versionString(), profile, now.Format(time.RFC3339))
	return l, nil
}

// pruneLogs keeps the newest keepLogs logs of a profile. Names sort by time.
func pruneLogs(dir, profile string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var mine []string
	for _, e := range ents {
		n := e.Name()
		rest, ok := strings.CutPrefix(n, profile+"-")
		// The rest must start with the date, so "web" does not prune "web-2"'s logs.
		if ok && strings.HasSuffix(n, ".log") && len(rest) > 8 && isDigits(rest[:8]) {
			mine = append(mine, n)
		}
	}
	slices.Sort(mine)
	for len(mine) > keepLogs {
		_ = os.Remove(filepath.Join(dir, mine[0]))
		mine = mine[1:]
	}
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

func (l *sessionLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.capped {
		return len(p), nil
	}
	if l.n+len(p) > maxLogSize {
		l.capped = true
		_, _ = fmt.Fprintf(l.f, "\n[log truncated at %d bytes]\n", maxLogSize)
		return len(p), nil
	}
	n, err := l.f.Write(p)
	l.n += n
	if err != nil {
		return n, err
	}
	return len(p), nil
}

// printf writes one line stamped with the time since the session started.
// The text may quote the guest: it goes through guesttext, so it is
// one line with no terminal escapes. (What the session streams into the log
// with Write is sanitized by the session already, line by line.)
func (l *sessionLog) printf(format string, args ...any) {
	line := fmt.Sprintf("%8.3fs %s\n", time.Since(l.started).Seconds(), guesttext.LineCap(fmt.Sprintf(format, args...), maxMessage))
	_, _ = io.WriteString(l, line)
}

func (l *sessionLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// logDir is where session logs go.
func logDir(stateHome string) string { return filepath.Join(stateHome, "xvmview") }

// latestLog returns the newest log file of a profile, for tests and hints.
func latestLog(dir, profile string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var best string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), profile+"-") && strings.HasSuffix(e.Name(), ".log") && e.Name() > best {
			best = e.Name()
		}
	}
	if best == "" {
		return "", fs.ErrNotExist
	}
	return filepath.Join(dir, best), nil
}
