package executor

import (
	"context"
	"fmt"
	"os/exec"
	"sync"

	"github.com/builderdev/builder/executor/container"
)

// Network modes a RUN step can have; Options.Network picks the one a step
// without --network gets.
const (
	// NetworkDefault is docker build's default: the step's own network
	// namespace with outbound access only, never the host's loopback.
	NetworkDefault = "default"
	// NetworkNone is a network namespace with only lo.
	NetworkNone = container.NetworkNone
	// NetworkHost is the builder's own network, loopback services and
	// all. A Dockerfile may ask for it only when Options.AllowNetworkHost
	// is set, as BuildKit requires the network.host entitlement.
	NetworkHost = container.NetworkHost
)

// netState is the build's shared sandbox network, started by the first
// RUN step that needs it.
type netState struct {
	once  sync.Once
	stack *container.SandboxNet // nil when slirp4netns is missing: steps get no outbound access
	err   error
}

// networkMode resolves a RUN step's --network value.
func (b *build) networkMode(flag string) (string, error) {
	mode := flag
	if mode == "" || mode == NetworkDefault {
		mode = b.opts.Network
	}
	if mode == "" {
		mode = NetworkDefault
	}
	switch mode {
	case NetworkDefault, NetworkNone, NetworkHost:
		return mode, nil
	}
	return "", fmt.Errorf("unsupported --network=%s (use default, host or none)", mode)
}

// joinSandbox points spec at the build's sandbox network, starting it on
// first use. Without slirp4netns the step gets an isolated namespace with
// no outbound access, and the build says so once.
func (b *build) joinSandbox(ctx context.Context, spec *container.Spec) error {
	n := &b.net
	n.once.Do(func() {
		slirp, err := exec.LookPath("slirp4netns")
		if err != nil {
			b.warn("slirp4netns is not installed: RUN steps have no outbound network (install slirp4netns, or pass --network=host to use the host's network)")
			return
		}
		// Shared by every step of the build: not bound to the one that
		// happened to start it.
		n.stack, n.err = container.StartSandboxNet(context.WithoutCancel(ctx), slirp)
	})
	if n.err != nil {
		return fmt.Errorf("setting up the RUN network: %w", n.err)
	}
	if n.stack == nil {
		spec.Network = container.NetworkNone
		return nil
	}
	n.stack.Join(spec)
	return nil
}

// closeNetwork stops the sandbox network, if one was started.
func (b *build) closeNetwork() error {
	if b.net.stack == nil {
		return nil
	}
	if err := b.net.stack.Close(); err != nil {
		return fmt.Errorf("stopping the RUN network: %w", err)
	}
	return nil
}
