// Command startup measures how long it takes from launch to the guest app's
// first window mapped on the nested display, for xvmview and for the shell
// script it replaces (two ssh logins, the cookie on command lines), against
// the same test guest (internal/testguest) and the same host display (Xvfb),
// interleaved in one run. It prints the median, minimum and maximum of each
// and the ratio xvmview/script, then the phase timings of one verbose
// xvmview run.
//
// Run it as root from the repository root, after building ./xvmview:
//
//	make bench    # go build -o xvmview ./cmd/xvmview && go run ./bench/startup
//
// It is a measurement, not a pass/fail test: the exit status is 1 only when
// a launcher failed to start the app or the bench could not set up or clean
// up, not when the target ratio is missed.
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
