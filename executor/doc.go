// Package executor runs a [parser.Plan]: it schedules the stages the target
// needs, computes each step's cache key, reuses cached results, and runs
// what misses: FROM through a [Resolver], RUN in a namespaced container on
// an overlay snapshot, COPY and ADD into an overlay mount, metadata
// instructions into the image config. It reports what happens as [Event]
// values through a [Reporter] and never prints.
//
// RUN containers are this same binary, re-executed: programs that use the
// executor call [container.ReexecMain] first thing in main (and in
// TestMain), which runs the container side when the process was started
// as one. The container itself, and the isolation it promises, is the
// package executor/container.
package executor
