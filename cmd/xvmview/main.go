// Command xvmview opens a guest's apps in a nested X display (Xephyr) of
// their own, so they never see the host's screen, keyboard or clipboard.
package main

import (
	"context"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/jezek/xgb"
)

func main() {
	xgb.Logger = log.New(io.Discard, "", 0) // xgb logs every closed connection
	// The launcher's CPU goes into copying X through the SSH connection,
	// where one P (goroutine hand-offs stay on one thread) and fewer GCs
	// (x/crypto/ssh allocates per packet) measured 5-20% faster
	// (bench/x11perf, "fwd P1 GC400"). Nothing else here needs parallelism.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(400)
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// A closed stdout/stderr pipe (xvmview run web | head) must not kill the
	// launcher before its teardown: with SIGPIPE notified, writes fail with
	// EPIPE instead. (Not signal.Ignore: children would inherit SIG_IGN.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	go func() { cancel(signalError{<-sigs}) }()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(code)
}
