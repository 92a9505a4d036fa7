package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/builderdev/builder/executor"
)

// signalContext is cancelled by the first SIGINT or SIGTERM, so that a
// build stops its containers and cleans up; a second signal exits at
// once, with 128 and its number. Either way nothing is left behind: RUN
// containers die with the builder (their parent-death signal), mounts
// live in namespaces that die with it, and the next builder removes the
// session directory. received returns the first signal's number, 0 if
// none came.
func signalContext() (ctx context.Context, received func() int, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var first atomic.Int32
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-ch
		first.Store(int32(s.(syscall.Signal)))
		notice("builder: stopping (interrupt again to quit at once)")
		cancel()
		s = <-ch
		os.Exit(128 + int(s.(syscall.Signal)))
	}()
	// stop keeps the handler: a second signal between the command's end
	// and the exit must give the same status, not kill the process.
	return ctx, func() int { return int(first.Load()) }, cancel
}

// liveDisplay is the terminal display drawing now, if any: a message
// from outside the command (the signal handler's) must go through it, or
// it would break the frame being redrawn in place.
var liveDisplay atomic.Pointer[ttyDisplay]

func notice(msg string) {
	if d := liveDisplay.Load(); d != nil {
		d.Report(executor.Event{Kind: executor.BuildWarning, Line: msg, Time: time.Now()})
		return
	}
	fmt.Fprintln(os.Stderr, msg)
}
