// Command builder builds OCI images from Dockerfiles without a daemon.
//
// It only wires the library packages together: flags and environment
// (options.go), one file per subcommand, rendering of build events
// (plain.go, tty.go) and exit codes (base.go).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/store"
)

func main() {
	// A RUN container is this binary re-executed; it must take over
	// before any flag is looked at.
	if container.ReexecMain() {
		return
	}
	ctx, stop := signalContext()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, env: newEnvironment()}
	code := run(ctx, a, os.Args[1:])
	stop()
	os.Exit(code)
}

// app is one invocation's I/O and environment.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	env            *environment
}

// signalContext is cancelled by the first SIGINT or SIGTERM, so that a
// build stops its containers and cleans up; a second signal exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-ch; !ok {
			return
		}
		fmt.Fprintln(os.Stderr, "builder: stopping (interrupt again to quit at once)")
		cancel()
		if _, ok := <-ch; ok {
			os.Exit(exitFailure)
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(ch)
		cancel()
	}
}

// open opens the local store, its cache and snapshots together.
func (a *app) open() (*store.Store, error) {
	root, err := a.env.storeRoot()
	if err != nil {
		return nil, err
	}
	maxLayer, err := a.env.maxLayerSize()
	if err != nil {
		return nil, err
	}
	return store.Open(root, store.Options{MaxLayerSize: maxLayer})
}
