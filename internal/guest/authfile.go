package guest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/xvmview/xvmview/internal/guesttext"
)

// AuthFileName is the file's name inside the directory the keeper makes.
const AuthFileName = "Xauthority"

// keeper is the guest-side owner of a session's Xauthority file, POSIX sh
// code run through Portable. It never puts the cookie on a command line or on disk
// outside a tmpfs, and it removes what it made when its channel closes.
//
//   - Until the directory is made and its trap set, HUP, INT, TERM and PIPE
//     are ignored (by mktemp too): a signal there could end it between
//     mktemp and the trap and leave the directory. A keeper given up on
//     that early sees its channel's EOF at its first read and exits
//     through the trap.
//   - It exits 127 at once when the guest has no xauth.
//   - The directory: a fresh one made by `mktemp -d` (0700) in
//     $XDG_RUNTIME_DIR when that is /run/user/* or /var/run/user/* and a
//     private (0700) directory of this user, not a symlink (pam_systemd's
//     per-user tmpfs); else in /dev/shm (a tmpfs on Linux); else in /tmp.
//   - From then on an EXIT trap removes the directory, and HUP, INT, TERM
//     and PIPE exit through it (programs it starts get them as usual).
//   - It reads one line from the channel, the numeric Xauthority entry, into
//     a shell variable and hands it to `xauth -q -f DIR/Xauthority nmerge -`
//     on a pipe by printf, a built-in: the cookie is in no argv, environment
//     or file other than DIR/Xauthority.
//   - It reports "DIR" on stdout once the file holds the entry, then reads
//     the channel until EOF: when the launcher closes it, when sshd closes it
//     because the connection dropped, or when the launcher died. Then the
//     trap removes the directory.
const keeper = `umask 077
trap '' HUP INT TERM PIPE
command -v xauth >/dev/null 2>&1 || exit 127
d=
case ${XDG_RUNTIME_DIR-} in
/run/user/*|/var/run/user/*)
	r=$XDG_RUNTIME_DIR
	if [ -d "$r" ] && [ ! -L "$r" ] && [ -O "$r" ] && [ -n "$(find "$r" -prune -perm 700 2>/dev/null)" ]; then
		d=$(mktemp -d "$r/xvmview.XXXXXXXXXX" 2>/dev/null) || d=
	fi;;
esac
[ -n "$d" ] || d=$(mktemp -d /dev/shm/xvmview.XXXXXXXXXX 2>/dev/null) || d=
[ -n "$d" ] || d=$(mktemp -d /tmp/xvmview.XXXXXXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
trap 'exit 1' HUP INT TERM PIPE
IFS= read -r line || exit 1
printf '%s\n' "$line" | xauth -q -f "$d/` + AuthFileName + `" nmerge - || exit 1
line=
[ -s "$d/` + AuthFileName + `" ] || { echo "xauth wrote nothing" >&2; exit 1; }
printf '%s\n' "$d"
exec >/dev/null 2>&1
while IFS= read -r _; do :; done
exit 0`

// KeeperCommand is what NewAuthFile sends to sshd: the keeper in /bin/sh
// whatever the guest user's login shell (Portable).
func KeeperCommand() string { return Portable(keeper) }

// authDirRE is what a keeper may report: an absolute, clean path made of
// plain bytes, under /run/user/UID, /var/run/user/UID, /dev/shm or /tmp,
// ending in mktemp's xvmview.XXXXXXXXXX.
var authDirRE = regexp.MustCompile(`^(/run/user/[0-9]{1,10}|/var/run/user/[0-9]{1,10}|/dev/shm|/tmp)/xvmview\.[A-Za-z0-9]{10}$`)

// CheckAuthDir reports whether dir is a directory a keeper may have made.
// It is guest text: only a path of exactly that shape is used.
func CheckAuthDir(dir string) error {
	if !authDirRE.MatchString(dir) {
		return fmt.Errorf("the guest reported \"%s\" as its session Xauthority directory: want /run/user/UID, /dev/shm or /tmp followed by /xvmview.XXXXXXXXXX", guesttext.Line(dir))
	}
	return nil
}

// AuthFile is a session's Xauthority file on the guest: DIR/Xauthority in a
// private directory on a tmpfs, kept by a guest-side keeper. The file goes
// when the keeper's channel closes: at Close, when the SSH connection
// drops, or when the launcher dies. Nothing is written to ~/.Xauthority.
type AuthFile struct {
	Dir  string // the directory, checked by CheckAuthDir
	Path string // Dir + "/Xauthority": the guest programs' XAUTHORITY

	s      *ssh.Session
	stdin  io.WriteCloser
	done   chan struct{}
	status int
	err    error

	closeOnce sync.Once
	closeErr  error
}

// NewAuthFile starts a keeper on the guest, hands it entry (one numeric
// Xauthority line as `xauth nlist` prints it, newline-terminated) on the
// channel and waits, bounded by ctx, until the keeper reports the directory
// that now holds the file. The entry travels only on the channel.
//
// It returns *ExitError with Status 127 when the guest has no xauth, an
// *AuthFileError when the keeper failed or reported something that is not a
// directory it may have made, and a wrapped ctx error when ctx ended first.
// On every error the keeper's channel is closed again, so what it made is
// removed.
func (c *Client) NewAuthFile(ctx context.Context, entry []byte) (*AuthFile, error) {
	if len(entry) == 0 || entry[len(entry)-1] != '\n' || strings.Count(string(entry), "\n") != 1 {
		return nil, errors.New("session Xauthority on guest: want exactly one newline-terminated entry")
	}
	a := &AuthFile{done: make(chan struct{})}
	stderr := &capWriter{max: 2 << 10}
	outR, outW := io.Pipe()
	s, err := c.session(ctx, func(s *ssh.Session) error {
		s.Stdout, s.Stderr = outW, stderr
		in, err := s.StdinPipe()
		if err != nil {
			return err
		}
		a.stdin = in
		return s.Start(KeeperCommand())
	})
	if err != nil {
		return nil, fmt.Errorf("start the Xauthority keeper on guest %s: %w", c.RemoteAddr(), err)
	}
	a.s = s
	go func() {
		err := s.Wait()
		st, _, ok := exitStatus(err)
		a.status = st
		if !ok {
			a.err = fmt.Errorf("the Xauthority keeper's session on guest %s ended without an exit status (connection lost?): %w", c.RemoteAddr(), err)
		}
		s.Close()
		outW.Close()
		close(a.done)
	}()

	type report struct {
		line string
		err  error
	}
	rc := make(chan report, 1)
	go func() {
		// The report is one short line; what follows is drained so that a
		// keeper that talks on cannot stall the session.
		br := bufio.NewReaderSize(io.LimitReader(outR, 512), 512)
		line, err := br.ReadString('\n')
		rc <- report{line, err}
		_, _ = io.Copy(io.Discard, outR)
	}()
	fail := func(err error) (*AuthFile, error) {
		a.abort()
		return nil, err
	}
	// A keeper that exited already (no xauth) has closed the channel: the
	// write fails then, and its exit status below says why.
	_, _ = a.stdin.Write(entry)
	select {
	case r := <-rc:
		if r.err != nil {
			// No line: the keeper failed. Its status says why.
			select {
			case <-a.done:
			case <-ctx.Done():
				return fail(fmt.Errorf("session Xauthority on guest %s: %w", c.RemoteAddr(), ctx.Err()))
			}
			if a.err != nil {
				return fail(a.err)
			}
			if a.status == 127 {
				return fail(&ExitError{Status: 127})
			}
			return fail(&AuthFileError{Host: c.RemoteAddr(), Status: a.status, Stderr: stderr.String()})
		}
		dir := strings.TrimSuffix(r.line, "\n")
		if err := CheckAuthDir(dir); err != nil {
			return fail(&AuthFileError{Host: c.RemoteAddr(), Status: -1, Err: err})
		}
		a.Dir, a.Path = dir, dir+"/"+AuthFileName
		return a, nil
	case <-ctx.Done():
		return fail(fmt.Errorf("session Xauthority on guest %s: %w", c.RemoteAddr(), ctx.Err()))
	}
}

// abort ends the keeper without waiting: SIGTERM (which sshd sends to the
// keeper's whole process group, its xauth too: a keeper stuck in a hanging
// xauth would not see its channel close), then the channel closes. Either
// way the keeper's EXIT trap removes what it made.
func (a *AuthFile) abort() {
	_ = a.s.Signal(ssh.SIGTERM)
	a.stdin.Close()
	a.s.Close()
}

// AuthFileError says that the guest's keeper could not make the session's
// Xauthority file, or reported a directory it may not have made.
type AuthFileError struct {
	Host   string
	Status int    // the keeper's exit status; -1 if it did not exit
	Stderr string // its stderr, at most 2 KiB, raw guest text: Error shows it through guesttext.Line
	Err    error
}

func (e *AuthFileError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("session Xauthority on guest %s: %v", e.Host, e.Err)
	}
	msg := fmt.Sprintf("session Xauthority on guest %s: xauth failed (status %d)", e.Host, e.Status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + guesttext.Line(s)
	}
	return msg
}

func (e *AuthFileError) Unwrap() error { return e.Err }

// ErrKeeperUnconfirmed is what Close returns (wrapped) when the keeper did
// not confirm the removal before Close's time ran out: the keeper removes
// the directory when it sees its channel close, which Close has done.
var ErrKeeperUnconfirmed = errors.New("the guest's Xauthority keeper did not confirm")

// Done is closed when the keeper's session has ended: the file is gone
// (or, if the keeper was killed by SIGKILL, left without its keeper).
func (a *AuthFile) Done() <-chan struct{} { return a.done }

// Err says how the keeper's session ended, once Done is closed: its exit
// status, or that the session ended without one (connection lost). It is
// nil while the keeper runs.
func (a *AuthFile) Err() error {
	select {
	case <-a.done:
	default:
		return nil
	}
	if a.err != nil {
		return a.err
	}
	return fmt.Errorf("the Xauthority keeper exited with status %d", a.status)
}

// Close ends the keeper: it closes the channel, on which the keeper removes
// the directory and exits, and waits for its exit status, bounded by ctx and
// a few seconds. It returns nil when the keeper confirmed the removal (exit
// status 0), and an error naming the directory otherwise. Idempotent.
func (a *AuthFile) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		a.stdin.Close()
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case <-a.done:
		case <-t.C:
		case <-ctx.Done():
		}
		select {
		case <-a.done:
			switch {
			case a.err != nil:
				a.closeErr = fmt.Errorf("%w; the guest's keeper removes %s when it sees the channel close", a.err, a.Dir)
			case a.status != 0:
				a.closeErr = fmt.Errorf("the guest's Xauthority keeper exited with status %d: %s may be left", a.status, a.Dir)
			}
		default:
			a.s.Close()
			a.closeErr = fmt.Errorf("%w removing %s in time; it removes it when it sees the channel close", ErrKeeperUnconfirmed, a.Dir)
		}
	})
	return a.closeErr
}

// capWriter keeps the first max bytes written to it and drops the rest.
type capWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *capWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
