// Command x11perf compares the ways X can travel from a guest to a nested
// Xephyr on the host, side by side in one run against the same test guest
// (internal/testguest) and the same Xephyr: x11perf runs ON THE GUEST with
// GetImage 500x500, PutImage 500x500 and GetProperty (a round trip) over
//
//   - direct: plain TCP to the host (Xephyr -listen tcp, DISPLAY=HOSTADDR:N),
//   - xvmview: xvmview's transport, guest.Client.ForwardX, with x11perf run
//     as a session on the same connection and the launcher's process
//     settings (guest.TuneProcess: one P, GOGC=400), as the launcher runs,
//   - fwd Go defaults: the same forward with Go's defaults (GOMAXPROCS =
//     CPUs, GOGC=100), to show what the settings are worth,
//   - ssh -X: OpenSSH's X11 forwarding (`ssh -X -F CONFIG ALIAS x11perf`),
//     with its default cipher and with aes128-gcm,
//
// and prints ops/s per test and transport and the ratios xvmview/ssh -X and
// xvmview/direct. Run it as root from the repository root:
//
//	go run ./bench/x11perf
//
// It is a measurement, not a pass/fail test: the exit status is 1 only when
// the setup or a run failed, not when a target is missed.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
