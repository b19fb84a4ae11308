package xephyr

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Every X client on the nested display, the guest's included, talks to
// Xephyr; Start confines it: it gets only the environment it needs to open
// the host display, it runs with no_new_privs, and its memory is limited.

// hostEnvNames are the variables Xephyr gets from Options.Env: what libX11
// and libXau read to open the host display. Measured on Xephyr 21.1.7: it
// runs, reaches the host display, compiles its keymap (xkbcomp's path is
// compiled in) and serves clients with DISPLAY alone, plus XAUTHORITY when
// the host display wants a cookie. XAUTHLOCALHOSTNAME is how libXau on
// openSUSE finds the host's entry after a hostname change. HOME is passed
// only when XAUTHORITY is not set: libXau then reads ~/.Xauthority.
var hostEnvNames = []string{"DISPLAY", "XAUTHORITY", "XAUTHLOCALHOSTNAME"}

// confinedEnv returns the part of env Xephyr gets (see hostEnvNames); nil
// env means the launcher's environment.
func confinedEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	get := func(name string) (string, bool) {
		var v string
		var ok bool
		for _, kv := range env { // the last one wins, as in exec.Cmd
			if n, val, found := strings.Cut(kv, "="); found && n == name {
				v, ok = val, true
			}
		}
		return v, ok
	}
	out := []string{}
	for _, n := range hostEnvNames {
		if v, ok := get(n); ok {
			out = append(out, n+"="+v)
		}
	}
	if _, ok := get("XAUTHORITY"); !ok {
		if v, ok := get("HOME"); ok {
			out = append(out, "HOME="+v)
		}
	}
	return out
}

// Memory limit of the nested server: Start sets RLIMIT_DATA, which counts
// what X clients can make Xephyr allocate (its heap and private anonymous
// mappings: pixmaps, pictures, glyphs, properties) and leaves out the
// shared libraries (about 225 MiB of Xephyr's 240 MiB VmSize at idle, which
// RLIMIT_AS would count) and the MIT-SHM segments it shares with the host
// display. Measured on Xephyr 21.1.7 under Xvfb: VmData 10-12 MiB at idle
// whatever the screen (800x600 to 3840x2160), 13 MiB after x11perf's image,
// copy, text and composite tests; VmRSS 73 / 81 / 106 MiB at idle for
// 800x600 / 1920x1080 / 3840x2160 (the framebuffer is in shared memory).
const (
	// MemoryBase is the part of DefaultMemoryLimit that does not depend on
	// the screen: room for ordinary applications' pixmaps and fonts.
	MemoryBase = 256 << 20
	// MemoryPerScreen is how many framebuffers' worth of pixmaps
	// (width x height x 4 bytes each) DefaultMemoryLimit adds: a
	// compositing window manager keeps one per window, browsers a few.
	MemoryPerScreen = 16
	// MinMemoryLimit is the smallest limit Start accepts: below it Xephyr
	// may not start.
	MinMemoryLimit = 64 << 20
)

// DefaultMemoryLimit is the RLIMIT_DATA for a nested screen of at most
// width x height pixels: MemoryBase plus MemoryPerScreen framebuffers of 4
// bytes per pixel (800x600: 285 MiB, 1920x1080: 383 MiB, 3840x2160: 762 MiB).
func DefaultMemoryLimit(width, height int) int64 {
	return MemoryBase + MemoryPerScreen*int64(width)*int64(height)*4
}

// startConfined starts cmd with no_new_privs set: Xephyr and everything it
// runs (xkbcomp) can never gain privileges through exec (setuid or setgid
// bits, file capabilities). Go's SysProcAttr has no field for it and a
// prctl in the launcher would mark the launcher's own thread for every
// later exec, so cmd is started from a goroutine locked to a thread of its
// own, which sets the flag on that thread alone before the fork; the child
// inherits it. The runtime never clones new threads from a locked one (it
// hands thread creation to a clean template thread), so the flag stays on
// that thread. The thread is held until release is closed (Xephyr has
// exited) and then ends with its goroutine (the main thread, if it was that
// one, is instead parked by the runtime for good and never runs Go code
// again, so /proc/PID/status may show NoNewPrivs 1 for the launcher while
// none of its later children has it): the kernel sends the child's
// Pdeathsig when the thread that forked it exits, so holding it makes the
// SIGTERM on the launcher's death independent of what the runtime does
// with its threads.
func startConfined(cmd *exec.Cmd, release <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the marked thread must not run other
		// goroutines; it exits when this goroutine returns.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			errc <- fmt.Errorf("start Xephyr: set no_new_privs: %w", err)
			return
		}
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-release
		}
	}()
	return <-errc
}

// limitMemory sets pid's RLIMIT_DATA (soft and hard) to n bytes; 0 leaves
// it alone.
func limitMemory(pid int, n int64) error {
	if n == 0 {
		return nil
	}
	lim := unix.Rlimit{Cur: uint64(n), Max: uint64(n)}
	if err := unix.Prlimit(pid, unix.RLIMIT_DATA, &lim, nil); err != nil {
		return fmt.Errorf("start Xephyr: limit its memory (RLIMIT_DATA %d MiB): %w", n>>20, err)
	}
	return nil
}
