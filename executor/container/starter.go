package container

import (
	"context"
	"errors"
	"os"
	"sync"
)

// Starter runs containers on children started ahead of time. Starting a
// child is a re-exec of the builder: the kernel's exec, then the Go
// runtime and every package's init, 3 ms of a 7 ms `RUN true` (measured
// in the child against the parent's clock, BenchmarkRunTrue). A Starter
// keeps one child waiting for each network a build uses, started while
// the previous step commits, so a step finds it ready. A waiting child
// has made its namespaces and does nothing else until it reads a spec;
// it holds no mount and dies with the builder (Pdeathsig), like any child.
type Starter struct {
	mu     sync.Mutex
	idle   map[startKey]*child
	closed bool
	wg     sync.WaitGroup // refills in flight
}

type startKey struct {
	network string
	netNS   *os.File
}

// NewStarter returns a Starter; Close it to end the waiting children.
func NewStarter() *Starter { return &Starter{idle: map[startKey]*child{}} }

// Run is [Run] on a child started ahead of time when one is waiting;
// afterwards another is started for the next step on the same network.
func (s *Starter) Run(ctx context.Context, spec Spec, output func(stream int, line string)) (int, error) {
	if err := prepare(ctx, &spec); err != nil {
		return -1, err
	}
	key := startKey{spec.Network, spec.netNS}
	defer s.refill(key)
	if c := s.take(key); c != nil {
		code, err := c.run(ctx, spec, output)
		// Killed while it waited (the OOM killer, a stray kill): nothing
		// of the step ran, so it runs on a child of its own.
		if !errors.Is(err, errChildGone) {
			return code, err
		}
	}
	c, err := startChild(spec.Network, spec.netNS)
	if err != nil {
		return -1, err
	}
	return c.run(ctx, spec, output)
}

func (s *Starter) take(key startKey) *child {
	s.mu.Lock()
	c := s.idle[key]
	delete(s.idle, key)
	s.mu.Unlock()
	if c != nil && !c.alive() {
		c.kill()
		return nil
	}
	return c
}

// refill starts a child for key in the background, unless one waits.
func (s *Starter) refill(key startKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.idle[key] != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c, err := startChild(key.network, key.netNS)
		if err != nil {
			return // the next step starts its own and reports the error
		}
		s.mu.Lock()
		if s.closed || s.idle[key] != nil {
			s.mu.Unlock()
			c.kill()
			return
		}
		s.idle[key] = c
		s.mu.Unlock()
	}()
}

// Close kills the waiting children and waits for them to be reaped.
func (s *Starter) Close() {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	s.wg.Wait()
	for _, c := range idle {
		c.kill()
	}
}
