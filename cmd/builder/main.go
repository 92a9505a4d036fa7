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

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/snapshot"
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

// stores opens the local store and its snapshots.
func (a *app) stores() (*cache.Store, *snapshot.Store, error) {
	root, err := a.env.storeRoot()
	if err != nil {
		return nil, nil, err
	}
	maxLayer, err := a.env.maxLayerSize()
	if err != nil {
		return nil, nil, err
	}
	// Snapshots first: opening them detaches stale mounts, which must be
	// gone before cache.Open removes the dead sessions they sit in.
	snaps, err := snapshot.OpenOptions(root, snapshot.Options{MaxLayerSize: maxLayer})
	if err != nil {
		return nil, nil, fmt.Errorf("opening snapshots in %s: %w", root, err)
	}
	store, err := cache.Open(root)
	if err != nil {
		snaps.Close()
		return nil, nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	return store, snaps, nil
}

// store opens only the local store, for commands that need no snapshots.
func (a *app) store() (*cache.Store, error) {
	root, err := a.env.storeRoot()
	if err != nil {
		return nil, err
	}
	store, err := cache.Open(root)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	return store, nil
}
