// Command builder builds OCI images from Dockerfiles without a daemon.
//
// It only wires the library packages together: flags and environment
// (options.go), one file per subcommand, rendering of build events
// (plain.go, tty.go) and exit codes (base.go).
package main

import (
	"io"
	"os"

	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/store"
)

func main() {
	// A RUN container is this binary re-executed; it must take over
	// before any flag is looked at.
	if container.ReexecMain() {
		return
	}
	ctx, received, stop := signalContext()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, env: newEnvironment()}
	code := run(ctx, a, os.Args[1:])
	stop()
	if n := received(); n != 0 && code == exitFailure {
		// Stopped by a signal, not failed: 130 for SIGINT, 143 for
		// SIGTERM, as a shell reports them.
		code = 128 + n
	}
	os.Exit(code)
}

// app is one invocation's I/O and environment.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	env            *environment
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
