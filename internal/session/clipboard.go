package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/clipboard"
	"github.com/xvmview/xvmview/internal/guesttext"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// The clipboard crosses between the host display and the nested one only on
// the user's act: the frame's copy key (or `xvmview clip pull`) takes the
// guest's CLIPBOARD, the paste key (or `xvmview clip push`) offers text to
// the guest for one paste. PRIMARY never crosses.
const (
	// ClipboardTimeout bounds each wait on a clipboard owner or display.
	ClipboardTimeout = 5 * time.Second
	// PasteWindow is how long text offered to the guest stays offered
	// when no paste takes it.
	PasteWindow = 30 * time.Second
	// statusTime is how long a transfer's note stays on the frame.
	statusTime = 5 * time.Second
	// controlName is the session's control socket in its directory.
	controlName = "control.sock"
)

// clip is a session's two clipboards.
type clip struct {
	host, nested *clipboard.Conn
	max          int

	// ctx ends at teardown: it cuts short every transfer still running.
	ctx    context.Context
	cancel context.CancelFunc
	// busy counts what may still call Progress, Notice or the frame: the
	// key follower, the control socket's accept loop and handlers, and the
	// status note's timer. Teardown waits for it, bounded.
	busy sync.WaitGroup

	mu          sync.Mutex
	statusTimer *time.Timer
}

// quiesce ends every transfer in flight and waits, until ctx ends, for all
// that may still report. A transfer cut short ends at once; one that does
// not within the teardown's time is not an error of the teardown: Run lets
// nothing report after it returns, and every transfer ends within
// ClipboardTimeout.
func (c *clip) quiesce(ctx context.Context) error {
	c.cancel()
	c.mu.Lock()
	if c.statusTimer != nil && c.statusTimer.Stop() {
		c.busy.Done()
	}
	c.statusTimer = nil
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.busy.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// startClipboard connects to the CLIPBOARD of both displays, follows the
// frame's keys and opens the control socket. A profile with the clipboard
// off gets none of it.
func (r *runner) startClipboard(ctx context.Context) error {
	if r.pl.Profile.ClipboardOff {
		return nil
	}
	hd := hostDisplay(r.pl.Xephyr.Env)
	hc, err := xephyr.DialHost(ctx, hd.Display, hd.Xauthority)
	if err != nil {
		return &HostDisplayError{Display: hd.Display, Err: fmt.Errorf("clipboard: %w", err)}
	}
	host, err := clipboard.New(ctx, hc)
	if err != nil {
		return err
	}
	r.push("host clipboard", func(ctx context.Context) error { host.Close(ctx); return nil })
	nc, err := xephyr.Dial(ctx, r.srv.Display, r.cookie)
	if err != nil {
		return fmt.Errorf("clipboard: %w", err)
	}
	nested, err := clipboard.New(ctx, nc)
	if err != nil {
		return err
	}
	r.push("nested clipboard", func(ctx context.Context) error { nested.Close(ctx); return nil })
	cctx, cancel := context.WithCancel(context.Background())
	r.clip = &clip{host: host, nested: nested, max: r.pl.Profile.ClipboardLimit(), ctx: cctx, cancel: cancel}
	r.push("clipboard transfers", r.clip.quiesce)
	if r.frame != nil {
		r.clip.busy.Add(1)
		go r.clipKeys(r.frame.Keys(), r.frame.Done())
	}
	return r.serveControl()
}

// clipKeys acts on the frame's keys until the frame is gone.
func (r *runner) clipKeys(keys <-chan string, done <-chan struct{}) {
	defer r.clip.busy.Done()
	for {
		select {
		case k := <-keys:
			switch k {
			case keyCopy:
				_, _ = r.copyOut(false)
			case keyPaste:
				r.pasteHost()
			}
		case <-done:
			return
		case <-r.clip.ctx.Done():
			return
		}
	}
}

// status shows a note on the frame's label strip for a few seconds.
func (r *runner) status(format string, args ...any) {
	if r.frame == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	r.frame.SetStatus(msg)
	c := r.clip
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	if c.statusTimer != nil && c.statusTimer.Stop() {
		c.busy.Done()
	}
	c.busy.Add(1)
	c.statusTimer = time.AfterFunc(statusTime, func() {
		defer c.busy.Done()
		if r.frame.Status() == msg {
			r.frame.SetStatus("")
		}
	})
}

// copyOut reads the guest's CLIPBOARD. To the host's CLIPBOARD (the copy
// key), without control characters (guesttext.Paste), or, with toCaller,
// only returned (clip pull). The log notes the direction and size, and how
// many bytes were dropped, never the text.
func (r *runner) copyOut(toCaller bool) (string, error) {
	ctx, cancel := context.WithTimeout(r.clip.ctx, ClipboardTimeout)
	defer cancel()
	text, err := r.clip.nested.Read(ctx, r.clip.max)
	if r.clip.ctx.Err() != nil {
		return "", errors.New("the session is ending")
	}
	if err != nil {
		r.notice("clipboard: nothing copied from the guest: %v", clipWhy(err))
		r.status("copy refused: %s", clipWhy(err))
		return "", err
	}
	if toCaller {
		r.phase(fmt.Sprintf("clipboard: %d bytes of the guest's CLIPBOARD read by 'xvmview clip pull'", len(text)))
		return text, nil
	}
	// Pasted into a terminal, controls act (ESC [201~ ends a bracketed
	// paste and the rest runs as typed): they do not reach the host.
	text, dropped := guesttext.Paste(text)
	if err := r.clip.host.Offer(ctx, text, 0, 0, nil); err != nil {
		r.notice("clipboard: cannot set the host's clipboard: %v", err)
		return "", err
	}
	msg := fmt.Sprintf("clipboard: %d bytes copied from the guest to the host's CLIPBOARD", len(text))
	if dropped > 0 {
		msg += fmt.Sprintf(" (%d bytes of control characters dropped)", dropped)
	}
	r.phase(msg)
	r.status("copied %d bytes out of the guest", len(text))
	return text, nil
}

// pasteHost offers the host's CLIPBOARD to the guest for one paste.
func (r *runner) pasteHost() {
	ctx, cancel := context.WithTimeout(r.clip.ctx, ClipboardTimeout)
	defer cancel()
	text, err := r.clip.host.Read(ctx, r.clip.max)
	if r.clip.ctx.Err() != nil {
		return
	}
	if err != nil {
		r.notice("clipboard: nothing offered to the guest: the host's %v", clipWhy(err))
		r.status("paste refused: %s", clipWhy(err))
		return
	}
	_ = r.offerGuest(ctx, text, "the host's CLIPBOARD")
}

// offerGuest makes text the guest's CLIPBOARD for one paste, withdrawn
// after PasteWindow.
func (r *runner) offerGuest(ctx context.Context, text, from string) error {
	n := len(text)
	err := r.clip.nested.Offer(ctx, text, 1, PasteWindow, func(e clipboard.Ended) {
		switch e.Reason {
		case "taken":
			r.phase(fmt.Sprintf("clipboard: the guest pasted the %d bytes; withdrawn", n))
		case "timeout":
			r.phase(fmt.Sprintf("clipboard: the %d bytes offered to the guest were not pasted within %s; withdrawn", n, PasteWindow))
		}
	})
	if err != nil {
		if r.clip.ctx.Err() == nil {
			r.notice("clipboard: cannot offer text to the guest: %v", err)
		}
		return err
	}
	r.phase(fmt.Sprintf("clipboard: %d bytes of %s offered to the guest for one paste (%s)", n, from, PasteWindow))
	r.status("%d bytes ready for one paste in the guest", n)
	return nil
}

// clipWhy words a clipboard error for the user and the log.
func clipWhy(err error) string {
	var tl *clipboard.TooLargeError
	switch {
	case errors.Is(err, clipboard.ErrEmpty):
		return "clipboard holds no text"
	case errors.As(err, &tl):
		return fmt.Sprintf("clipboard's text is larger than the profile's clipboard_max_bytes (%d)", tl.Max)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("clipboard's owner did not answer within %s", ClipboardTimeout)
	}
	return err.Error()
}

// serveControl listens on the session's control socket (0600 in the 0700
// session directory) for 'xvmview clip' requests of the same user.
func (r *runner) serveControl() error {
	path := r.dir.file(controlName)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	r.push("control socket", func(context.Context) error { return l.Close() })
	r.clip.busy.Add(1)
	go func() {
		defer r.clip.busy.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			r.clip.busy.Add(1)
			go func() {
				defer r.clip.busy.Done()
				r.control(c)
			}()
		}
	}()
	return nil
}

// control answers one request: "push N\n" and N bytes (offer them to the
// guest for one paste), or "pull\n" (the guest's CLIPBOARD). Answers are
// "ok N\n" and N bytes, or "error MESSAGE\n".
func (r *runner) control(c *net.UnixConn) {
	defer c.Close()
	if uid, err := peerUID(c); err != nil || uid != os.Getuid() {
		return
	}
	_ = c.SetDeadline(time.Now().Add(2*ClipboardTimeout + 5*time.Second))
	br := bufio.NewReader(io.LimitReader(c, 64))
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	reply := func(text string, err error) {
		if err != nil {
			fmt.Fprintf(c, "error %s\n", strings.ReplaceAll(clipWhy(err), "\n", " "))
			return
		}
		fmt.Fprintf(c, "ok %d\n%s", len(text), text)
	}
	cmd, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	switch cmd {
	case "pull":
		reply(r.copyOut(true))
	case "push":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 {
			reply("", errors.New("bad request"))
			return
		}
		if n > r.clip.max {
			r.notice("clipboard: 'xvmview clip push' of %d bytes refused: more than clipboard_max_bytes (%d)", n, r.clip.max)
			reply("", &clipboard.TooLargeError{Size: n, Max: r.clip.max})
			return
		}
		buf := make([]byte, n)
		// br holds what followed the line; the rest comes from c.
		if _, err := io.ReadFull(io.MultiReader(br, c), buf); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(r.clip.ctx, ClipboardTimeout)
		defer cancel()
		text := strings.ToValidUTF8(strings.ReplaceAll(string(buf), "\x00", ""), "\uFFFD")
		reply("", r.offerGuest(ctx, text, "'xvmview clip push'"))
	default:
		reply("", errors.New("unknown request"))
	}
}

// peerUID is the user ID of the process at the other end of c (SO_PEERCRED).
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *syscall.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// ClipboardOffError means the session's profile has the clipboard off, or
// its launcher has no control socket.
type ClipboardOffError struct{ ID, Profile string }

func (e *ClipboardOffError) Error() string {
	return fmt.Sprintf("session %s (profile %s) has no clipboard: its profile sets clipboard = false, or it is still starting", e.ID, e.Profile)
}

// ClipPush offers text to the guest of the running session st (under root)
// for one paste, through the session's control socket. It returns
// *ClipboardOffError, or the session's refusal (too large, no answer).
func ClipPush(ctx context.Context, root string, st State, text []byte) error {
	c, err := dialControl(ctx, root, st)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		fmt.Fprintf(c, "push %d\n", len(text))
		_, _ = c.Write(text)
	}()
	_, err = controlReply(c, 0)
	return err
}

// ClipPull returns the text of the guest's CLIPBOARD in the running session
// st (the session's clipboard_max_bytes caps it). The text is the guest's,
// untrusted: forTerminal passes it through the guest-text sanitizer
// (guesttext.Block: control characters shown, not obeyed; long text cut),
// for a terminal; without it the bytes come as the guest sent them, for a
// pipe or a file the user chose.
func ClipPull(ctx context.Context, root string, st State, forTerminal bool) ([]byte, error) {
	c, err := dialControl(ctx, root, st)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "pull\n"); err != nil {
		return nil, fmt.Errorf("session %s: %w", st.ID, err)
	}
	b, err := controlReply(c, profile.MaxClipboardMax)
	if err != nil || !forTerminal {
		return b, err
	}
	return []byte(guesttext.Block(string(b))), nil
}

func dialControl(ctx context.Context, root string, st State) (*net.UnixConn, error) {
	if st.ID == "" || st.ID != filepath.Base(st.ID) || st.ID == "." || st.ID == ".." {
		return nil, fmt.Errorf("invalid session id %q", st.ID)
	}
	path := filepath.Join(root, st.ID, controlName)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, &ClipboardOffError{ID: st.ID, Profile: st.Profile}
	}
	if err != nil {
		return nil, fmt.Errorf("session %s: control socket: %w", st.ID, err)
	}
	c := nc.(*net.UnixConn)
	deadline := time.Now().Add(2*ClipboardTimeout + 5*time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	return c, nil
}

// controlReply reads "ok N\n" + N bytes (N at most max when max > 0) or
// "error MESSAGE\n".
func controlReply(c *net.UnixConn, max int) ([]byte, error) {
	br := bufio.NewReaderSize(c, 4096)
	b, err := br.ReadSlice('\n')
	if err != nil {
		return nil, fmt.Errorf("control socket: no answer: %w", err)
	}
	line := strings.TrimSuffix(string(b), "\n")
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return nil, errors.New(msg)
	}
	ns, ok := strings.CutPrefix(line, "ok ")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 0 || max > 0 && n > max {
		return nil, fmt.Errorf("control socket: bad answer %q", line)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return buf, nil
}
