// Package executor runs a Dockerfile: it takes a [Request] (which
// Dockerfile, which context, which arguments, what to do with the image),
// and turns the [parser.Plan] it parses into an image in a [store.Store].
//
// What it owns, file by file:
//   - request.go: [Prepare] reads the Dockerfile and the ignore file;
//     [Prepared.Run] builds, tags and exports under the store's build lock.
//   - build.go, stage.go: scheduling. Only the stages the target needs run,
//     each as soon as the stages it depends on are done; steps run in
//     order, each a cache hit or a run.
//   - keys.go: every cache-key recipe, one function per kind of step.
//   - from.go, run.go, runnet.go, copy*.go, sources.go, srctree.go,
//     archive.go, config.go, state.go: what each kind of step does. FROM
//     resolves an image through a [Resolver]; RUN builds a container.Spec
//     and starts it (the runtime is the package executor/container, which
//     knows nothing of builds); COPY and ADD read the context through
//     descriptors opened beneath it; metadata steps change the config.
//   - events.go, errors.go: what the caller sees: [Event] values through a
//     [Reporter], and [StepError] naming the Dockerfile line.
//
// What it does not own: parsing and build-arg rules (parser), the store's
// formats, locks and administration (cache, snapshot, store), registries
// and the default resolver (registry), the container (executor/container).
// It never prints.
//
// The life of one step: expand the instruction with the stage's
// environment; compute its key; on a hit apply the recorded layer and
// config; on a miss prepare a snapshot on the stage's chain, run the step
// into its upper directory, write the layer (WriteLayer through PutLayer),
// commit the snapshot and record the entry.
//
// RUN containers are this same binary, re-executed: programs that use the
// executor call container.ReexecMain first thing in main (and in
// TestMain), which runs the container side when the process was started
// as one.
package executor
