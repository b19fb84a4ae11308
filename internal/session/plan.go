// Package session runs one launch: it turns a profile into a Plan (pure: no
// I/O), then Run executes the plan — Xephyr, the SSH login, the guest's
// session Xauthority file, the window manager and the app — supervises it and tears
// everything down in reverse order, recording what it could not undo so that
// the next launch cleans up.
package session

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xvmview/xvmview/internal/frame"
	"github.com/xvmview/xvmview/internal/guest"
	"github.com/xvmview/xvmview/internal/memcg"
	"github.com/xvmview/xvmview/internal/profile"
	"github.com/xvmview/xvmview/internal/xauth"
	"github.com/xvmview/xvmview/internal/xephyr"
)

// Facts are what a plan needs to know about this machine. The CLI gathers
// them; tests make them up.
type Facts struct {
	RuntimeRoot  string        // where session directories go (see RuntimeRoot)
	HostEnv      []string      // the launcher's environment, for Xephyr (DISPLAY, XAUTHORITY) and local programs; nil: the process's
	Hostname     string        // this machine's name, for local Xauthority entries
	XephyrBinary string        // "" = Xephyr from PATH
	Guest        *guest.Target // the resolved SSH target; nil for a local profile
	// Host is the host display's size, DPI and keyboard (xephyr.QueryHost);
	// nil = unknown: Xephyr's defaults, and screen "auto" is DefaultScreen.
	Host *xephyr.HostFacts
	// Memory says what would hold Xephyr's memory limit besides
	// RLIMIT_DATA (ProbeMemory), for --dry-run; "" = not looked at.
	Memory string
}

// XephyrCgroupPrefix begins the name of the systemd scope
// (PREFIX+ID+".scope") or memory cgroup leaf (PREFIX+ID) that holds a
// session's Xephyr.
const XephyrCgroupPrefix = "xvmview-xephyr-"

// ProbeMemory says, changing nothing, what Run would try to put Xephyr's
// memory limit in besides RLIMIT_DATA, with env the host environment
// (Facts.HostEnv): memcg.Probe.
// It returns "none" when there is neither.
func ProbeMemory(env []string) string {
	c := memcg.Probe(memcg.Config{Name: XephyrCgroupPrefix + "ID", Env: env})
	if len(c) == 0 {
		return "none"
	}
	return strings.Join(c, ", else ")
}

// Timeouts bound each phase of a launch and of the teardown.
type Timeouts struct {
	Start    time.Duration // Xephyr ready and SSH logged in
	WMReady  time.Duration // the window manager owns the root window
	Teardown time.Duration // each teardown step
	Grace    time.Duration // between SIGTERM and SIGKILL
}

// DefaultTimeouts are generous enough for a slow VM and short enough that a
// hung guest does not keep a dead window on the desktop.
var DefaultTimeouts = Timeouts{Start: 30 * time.Second, WMReady: 5 * time.Second, Teardown: 5 * time.Second, Grace: 3 * time.Second}

// Plan is everything one launch will do, computed without side effects.
type Plan struct {
	Profile       profile.Profile
	RuntimeRoot   string
	Xephyr        xephyr.Options // AuthFile is set by Run to the session's file
	Guest         *guest.Target  // nil: run locally
	WindowManager []string
	Command       []string
	Transport     string // profile.TransportSSH or profile.TransportTCP; "" for local
	DisplayHost   string // tcp transport: the address the guest dials; "" = our end of the SSH connection
	Hostname      string
	Timeouts      Timeouts
	Fidelity      Fidelity      // where the screen, DPI and keyboard come from (fidelity.go)
	Frame         frame.Options // the trust frame around the window (frame.go)
	VM            *VM           // the libvirt domain behind the guest (vm.go); nil = none
	MemoryProbe   string        // Facts.Memory
}

// NewPlan builds the plan for running profile p with extra arguments appended
// to its command. It returns an error if the profile and the facts disagree
// (a remote profile without a resolved guest).
func NewPlan(p profile.Profile, extra []string, f Facts) (Plan, error) {
	if !p.Local() && f.Guest == nil {
		return Plan{}, fmt.Errorf("profile %s: guest %q was not resolved", p.Name, p.Host)
	}
	cmd := append(append([]string(nil), p.Command...), extra...)
	x := xephyr.Options{
		Binary: f.XephyrBinary,
		Screen: p.Screen,
		Title:  p.Title, // profile.Parse fills in the default
		Name:   "xvmview-" + p.Name,
		Env:    f.HostEnv,
	}
	pl := Plan{
		Profile:       p,
		RuntimeRoot:   f.RuntimeRoot,
		WindowManager: append([]string(nil), p.WindowManager...),
		Command:       cmd,
		Hostname:      f.Hostname,
		Timeouts:      DefaultTimeouts,
		MemoryProbe:   f.Memory,
	}
	if !p.Local() {
		t := *f.Guest
		pl.Guest = &t
		pl.Transport = p.Transport
		pl.VM = vmPlan(p)
		if p.Transport == profile.TransportTCP {
			x.ListenTCP = true // the guest dials us
			pl.DisplayHost = p.DisplayHost
		}
	}
	fid, err := displayOptions(&x, p, f.Host)
	if err != nil {
		return Plan{}, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	x.MemoryLimit = p.XephyrMemory
	if x.MemoryLimit == 0 {
		w, h := screenBound(x, f.Host)
		x.MemoryLimit = xephyr.DefaultMemoryLimit(w, h)
	}
	pl.Frame = framePlan(p, pl.Guest, x)
	// The frame covers the screen for fullscreen; Xephyr fills the frame.
	x.Fullscreen = false
	pl.Xephyr, pl.Fidelity = x, fid
	return pl, nil
}

// unknownScreenBound is the screen DefaultMemoryLimit is sized for when
// neither the profile nor the host display says how large it can get.
var unknownScreenBound = [2]int{3840, 2160}

// screenBound is the largest screen the nested server may get: its -screen,
// or the host screen's size when that is larger and the screen follows the
// window (the window can grow to the host screen), or fills it.
func screenBound(x xephyr.Options, host *xephyr.HostFacts) (w, h int) {
	if sc, err := profile.ParseScreen(x.Screen); err == nil {
		w, h = sc.Width, sc.Height
	}
	if host != nil && host.Width > 0 && host.Height > 0 {
		if x.Resizeable || x.Fullscreen || w == 0 {
			w, h = max(w, host.Width), max(h, host.Height)
		}
	} else if w == 0 || x.Resizeable || x.Fullscreen {
		w, h = max(w, unknownScreenBound[0]), max(h, unknownScreenBound[1])
	}
	return w, h
}

// guestDisplay is the DISPLAY the guest's programs get in tcp mode.
func guestDisplay(host string, n int) string {
	if strings.Contains(host, ":") { // IPv6 literal
		return fmt.Sprintf("[%s]:%d", host, n)
	}
	return fmt.Sprintf("%s:%d", host, n)
}

// firstForwardDisplay is where the ssh transport starts looking for a free
// display number on the guest's loopback (sshd's X11 forwarding uses 10 up
// too; a taken port is skipped).
const firstForwardDisplay = 10

// guestXauthRm removes a display's entries from the guest's ~/.Xauthority:
// only for sessions recorded by versions that wrote the cookie there (their
// state has GuestEntry); sessions now use a per-session file that the
// guest's keeper removes (guest.NewAuthFile).
func guestXauthRm(display string) string { return "xauth -q remove " + guest.Quote(display) }

// guestAuthDir and guestAuthFile stand for the directory the guest's keeper
// makes, in --dry-run.
const (
	guestAuthDir  = "$XDG_RUNTIME_DIR/xvmview.XXXXXXXXXX"
	guestAuthFile = guestAuthDir + "/" + guest.AuthFileName
)

// Describe prints the plan for --dry-run: the Xephyr argv and the guest
// commands, exactly as they will run, with the cookie redacted and the
// display number (known only once Xephyr runs) shown as N.
func (pl Plan) Describe(w io.Writer) error {
	x := pl.Xephyr
	x.AuthFile = filepath.Join(pl.RuntimeRoot, "SESSION", "server.xauth")
	x.Parent = 1 // shown as FRAME: the window exists only once the launch runs
	args, err := x.Args()
	if err != nil {
		return fmt.Errorf("profile %s: %w", pl.Profile.Name, err)
	}
	if i := slices.Index(args, "-parent"); i >= 0 {
		args[i+1] = "FRAME"
	}
	bin := x.Binary
	if bin == "" {
		bin = "Xephyr"
	}
	fmt.Fprintf(w, "profile:  %s (%s)\n", pl.Profile.Name, pl.Profile.Source)
	fmt.Fprintf(w, "runtime:  %s (0700, removed at exit)\n", filepath.Join(pl.RuntimeRoot, "SESSION"))
	fmt.Fprintf(w, "cookie:   16 random bytes, %s, written to server.xauth (0600) before Xephyr starts\n", xauth.Cookie{})
	fmt.Fprintf(w, "xephyr:   %s\n", shellJoin(append([]string{bin}, args...)))
	src := "sized from the screen"
	if pl.Profile.XephyrMemory != 0 {
		src = "xephyr_memory"
	}
	fmt.Fprintf(w, "confined: only the variables that open the host display (DISPLAY, XAUTHORITY), no_new_privs, RLIMIT_DATA %d MiB (%s)\n", x.MemoryLimit>>20, src)
	switch pl.MemoryProbe {
	case "":
	case "none":
		fmt.Fprintf(w, "memory:   RLIMIT_DATA alone: no way to the user's systemd and no memory cgroup this user can write\n")
	default:
		fmt.Fprintf(w, "memory:   the same %d MiB (swap included where the kernel accounts it) in %s; RLIMIT_DATA stays as the backstop\n", x.MemoryLimit>>20, pl.MemoryProbe)
	}
	pl.Fidelity.describe(w)
	fmt.Fprintf(w, "frame:    %s\n", describeFrame(pl.Frame, pl.Profile))
	if pl.Guest == nil {
		env := []string{"DISPLAY=:N", "XAUTHORITY=" + filepath.Join(pl.RuntimeRoot, "SESSION", "client.xauth")}
		for _, argv := range pl.programs() {
			line, err := guest.Command(env, argv)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "local:    %s\n", line)
		}
		return nil
	}
	g := pl.Guest
	fmt.Fprintf(w, "guest:    %s@%s port %d (ssh_config host %q), host key checked against %s\n",
		g.User, g.HostName, g.Port, g.Alias, strings.Join(g.KnownHostsFiles, ", "))
	pl.VM.describe(w)
	var display string
	if pl.Transport == profile.TransportTCP {
		dh := pl.DisplayHost
		if dh == "" {
			dh = "LOCAL-ADDRESS-OF-SSH-CONNECTION"
		}
		display = strings.TrimSuffix(guestDisplay(dh, 0), "0") + "N"
		fmt.Fprintf(w, "x11:      tcp: Xephyr listens on port 6000+N on all addresses; the guest connects in clear\n")
	} else {
		display = "localhost:D"
		fmt.Fprintf(w, "x11:      ssh: a listener on the guest's 127.0.0.1:6000+D (first free D from %d), carried inside the SSH connection to Xephyr's socket\n", firstForwardDisplay)
	}
	num := display[strings.LastIndexByte(display, ':')+1:]
	fmt.Fprintf(w, "guest$    sh -c KEEPER sh    (stdin: ffff 0000 0001 %s 0012 %x 0010 %s)\n", num, xauth.CookieName, xauth.Cookie{})
	fmt.Fprintf(w, "keeper:   makes %s (mktemp -d, 0700; /dev/shm or /tmp when $XDG_RUNTIME_DIR is not a private /run/user dir), xauth -q -f %s nmerge - with the line on stdin, removes the directory when its channel closes; ~/.Xauthority untouched\n", guestAuthDir, guestAuthFile)
	env := []string{"DISPLAY=" + display, "XAUTHORITY=" + guestAuthFile}
	for _, argv := range pl.programs() {
		line, err := guest.Command(env, argv)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "guest$    %s\n", line)
	}
	fmt.Fprintf(w, "teardown: app, window manager, session Xauthority (keeper's channel closed), ssh, Xephyr, runtime dir\n")
	if pl.Transport == profile.TransportTCP {
		fmt.Fprintf(w, "warning:  transport tcp: X traffic and the cookie cross the network in clear, and Xephyr listens on all addresses\n")
	}
	return nil
}

// programs are the window manager (if any) and the app, in start order.
func (pl Plan) programs() [][]string {
	if len(pl.WindowManager) == 0 {
		return [][]string{pl.Command}
	}
	return [][]string{pl.WindowManager, pl.Command}
}

// shellJoin quotes each word that needs it, for display.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
		}) < 0 {
			out[i] = a
		} else {
			out[i] = guest.Quote(a)
		}
	}
	return strings.Join(out, " ")
}
