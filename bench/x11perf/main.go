// Command x11perf compares the ways X can travel from a guest to a nested
// Xephyr on the host, side by side in one run against the same test guest
// (internal/testguest) and the same Xephyr: x11perf runs ON THE GUEST with
// GetImage 500x500, PutImage 500x500 and GetProperty (a round trip) over
//
//   - direct: plain TCP to the host (Xephyr -listen tcp, DISPLAY=HOSTADDR:N),
//   - forward: xvmview's transport, guest.Client.ForwardX, with x11perf run
//     as a session on the same connection, as the launcher does; once with
//     this process's defaults and once ("fwd P1 GC400") with GOMAXPROCS=1
//     and GOGC=400, settings a program may choose for itself,
//   - ssh -X: OpenSSH's X11 forwarding (`ssh -X -F CONFIG ALIAS x11perf`),
//     with its default cipher and with aes128-gcm,
//
// and prints ops/s per test and transport and the ratios forward/ssh -X and
// forward/direct. Run it as root from the repository root:
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
