package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xvmview/xvmview/internal/session"
	"github.com/xvmview/xvmview/internal/testguest"
	"github.com/xvmview/xvmview/internal/xauth"
)

// xvmview runs `xvmview run bench` with a private HOME (~/.ssh/config with
// an alias for the guest), XDG_CONFIG_HOME (the bench profile),
// XDG_RUNTIME_DIR and XDG_STATE_HOME, on the Xvfb. transport is the
// profile's transport ("tcp", "ssh"), or "" for the profile default.
type xvmview struct {
	cfg       config
	mem       memUse // at the last first window
	g         *testguest.Guest
	x         *testguest.Xvfb
	transport string
	label     string        // name() when set
	exitWait  time.Duration // how long the launcher may take to exit after SIGTERM; 0 = 20 s
	home      string
	config    string
	runtime   string
	state     string
}

func newXvmview(cfg config, g *testguest.Guest, x *testguest.Xvfb, dir, transport string) (*xvmview, error) {
	return newXvmviewWith(cfg, g, x, dir, transport, xvmviewSetup{})
}

// xvmviewSetup varies the bench's xvmview launcher: another guest (an
// ssh_config stanza for the alias "bench-guest"), more profile lines, no
// window manager, another name.
type xvmviewSetup struct {
	stanza string // "" = the test guest's
	extra  string // profile lines appended
	noWM   bool
	label  string
	// exitWait: the teardown may take this long (a VM shutdown).
	exitWait time.Duration
}

func newXvmviewWith(cfg config, g *testguest.Guest, x *testguest.Xvfb, dir, transport string, su xvmviewSetup) (*xvmview, error) {
	v := &xvmview{cfg: cfg, g: g, x: x, transport: transport, label: su.label, exitWait: su.exitWait,
		home: filepath.Join(dir, "home"), config: filepath.Join(dir, "config"),
		runtime: filepath.Join(dir, "run"), state: filepath.Join(dir, "state")}
	for _, d := range []string{dir, v.home, filepath.Join(v.home, ".ssh"), v.runtime, v.state,
		filepath.Join(v.config, "xvmview", "profiles")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create xvmview's private directories: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, err
		}
	}
	alias := "bench-guest"
	stanza := su.stanza
	if stanza == "" {
		stanza = g.HostStanza(alias, g.KnownHosts)
	}
	if err := os.WriteFile(filepath.Join(v.home, ".ssh", "config"), []byte(stanza), 0o600); err != nil {
		return nil, fmt.Errorf("write xvmview's ssh config: %w", err)
	}
	var cmd []string
	for _, a := range cfg.app {
		cmd = append(cmd, strconv.Quote(a))
	}
	prof := fmt.Sprintf(`description = "startup bench"
host = %q
command = [%s]
screen = "1280x1024"
`, alias, strings.Join(cmd, ", "))
	if !su.noWM {
		prof += "window_manager = [\"twm\"]\n"
	}
	prof += su.extra
	if transport != "" {
		prof += fmt.Sprintf("transport = %q\n", transport)
	}
	if err := os.WriteFile(filepath.Join(v.config, "xvmview", "profiles", "bench.toml"), []byte(prof), 0o600); err != nil {
		return nil, fmt.Errorf("write the bench profile: %w", err)
	}
	return v, nil
}

func (v *xvmview) name() string {
	if v.label != "" {
		return v.label
	}
	if v.transport == "" {
		return "xvmview"
	}
	return "xvmview (" + v.transport + ")"
}

func (v *xvmview) env() []string {
	return append([]string{
		"HOME=" + v.home,
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"XDG_CONFIG_HOME=" + v.config,
		"XDG_RUNTIME_DIR=" + v.runtime,
		"XDG_STATE_HOME=" + v.state,
	}, v.x.Env()...)
}

// locate finds the running session under $XDG_RUNTIME_DIR/xvmview whose
// Xephyr has a display (session.ReadStates), its directory and the cookie
// from server.xauth.
func (v *xvmview) locate() (dir string, st session.State, c xauth.Cookie, err error) {
	root := filepath.Join(v.runtime, "xvmview")
	states, err := session.ReadStates(root)
	if err != nil {
		return "", st, c, fmt.Errorf("%w: %v", errNotYet, err)
	}
	for _, s := range states {
		if s.Display < 0 || s.XephyrPID <= 0 {
			continue
		}
		d := filepath.Join(root, s.ID)
		c, err := cookieFromFile(filepath.Join(d, "server.xauth"))
		if err != nil {
			return "", s, c, err
		}
		return d, s, c, nil
	}
	return "", st, c, fmt.Errorf("%w: no session with a display under %s", errNotYet, root)
}

func (v *xvmview) once(ctx context.Context, verbose bool) (d time.Duration, out string, err error) {
	log := testguest.NewLogBuffer(64 << 10)
	args := []string{"run", "bench"}
	if verbose {
		args = append(args, "--verbose")
	}
	cmd := exec.Command(v.cfg.xvmview, args...)
	cmd.Dir = v.home
	cmd.Env = v.env()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second

	var st session.State
	var dir string
	var ino uint64
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start %s: %w", v.cfg.xvmview, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		if terr := v.teardown(ctx, cmd, exited, dir, st, ino); terr != nil {
			err = errors.Join(err, &leftoverError{terr})
		}
		out = log.String()
	}()

	wctx, cancel := context.WithTimeout(ctx, v.cfg.timeout)
	defer cancel()
	find := func() (int, xauth.Cookie, error) {
		var c xauth.Cookie
		var err error
		dir, st, c, err = v.locate()
		return st.Display, c, err
	}
	d, ino, err = waitWindow(wctx, start, find, v.cfg.app[0], v.cfg.poll, exited)
	if err == nil {
		v.mem = launcherMemory(cmd.Process.Pid)
	}
	return d, "", err
}

func (v *xvmview) memory() memUse { return v.mem }

// teardown sends xvmview SIGTERM and waits for it to exit, then checks that
// it removed everything itself: Xephyr, the session directory, the guest's
// processes and Xauthority entry, the display's socket. What it left is
// reported, and removed so the next run starts clean.
func (v *xvmview) teardown(ctx context.Context, cmd *exec.Cmd, exited <-chan struct{}, dir string, st session.State, ino uint64) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	running := true
	select {
	case <-exited:
		running = false // it failed by itself; the caller reports that
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	exitWait := 20 * time.Second
	if v.exitWait > 0 {
		exitWait = v.exitWait
	}
	t := time.NewTimer(exitWait)
	select {
	case <-exited:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && running && ws.ExitStatus() != 128+int(syscall.SIGTERM) {
			errs = append(errs, fmt.Errorf("xvmview exited with status %d after SIGTERM (want %d)", ws.ExitStatus(), 128+int(syscall.SIGTERM)))
		}
	case <-t.C:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		errs = append(errs, fmt.Errorf("xvmview did not exit within %s of SIGTERM; killed its process group", exitWait))
	}
	t.Stop()
	if st.XephyrPID > 0 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		left := waitGone(wctx, []int{st.XephyrPID})
		cancel()
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("xvmview left Xephyr (pid %d) running", st.XephyrPID))
			_ = stopPIDs(ctx, left, 3*time.Second)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(v.runtime, "xvmview")); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				errs = append(errs, fmt.Errorf("xvmview left its session directory %s", filepath.Join(v.runtime, "xvmview", e.Name())))
				_ = os.RemoveAll(filepath.Join(v.runtime, "xvmview", e.Name()))
			}
		}
	}
	n := -1 // display unknown: nothing to check there
	if dir != "" {
		n = st.Display
	}
	errs = append(errs, checkClean(ctx, v.g, n, ino, "xvmview"))
	return errors.Join(errs...)
}
