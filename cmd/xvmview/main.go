// Command xvmview opens a guest's apps in a nested X display (Xephyr) of
// their own, so they never see the host's screen, keyboard or clipboard.
package main

import (
	"context"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/jezek/xgb"

	"github.com/xvmview/xvmview/internal/guest"
)

func main() {
	xgb.Logger = log.New(io.Discard, "", 0) // xgb logs every closed connection
	// One P and GOGC=400: the X forward's measured best (bench/x11perf).
	guest.TuneProcess()
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
