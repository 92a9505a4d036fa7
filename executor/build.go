package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// buildPlan runs plan's target stage and what it needs, and stores the
// image; the caller holds the store's build lock and checked opts. A
// failing step gives a *StepError.
func buildPlan(ctx context.Context, plan *parser.Plan, opts Options) (*Result, error) {
	b := &build{plan: plan, opts: opts, started: time.Now(), cache: opts.Store.Cache(), snaps: opts.Store.Snapshots()}
	b.stages = make([]*stageRun, len(plan.Stages))
	for _, i := range plan.Needed() {
		b.stages[i] = &stageRun{done: make(chan struct{})}
	}
	b.warnUnusedArgs()
	defer b.closeNetwork()
	// Before the network closes: a waiting child may hold its namespace.
	b.starter = container.NewStarter()
	defer b.starter.Close()

	target, err := b.runStages(ctx)
	if err != nil {
		return nil, err
	}
	return b.finish(ctx, target)
}

func (o *Options) check() error {
	if o.Store == nil {
		return errors.New("executor: Options.Store is required")
	}
	if o.Reporter == nil {
		o.Reporter = Discard
	}
	switch o.Network {
	case "", NetworkDefault, NetworkNone, NetworkHost:
	default:
		return fmt.Errorf("unsupported network %q (use default, host or none)", o.Network)
	}
	if o.Platform.OS == "" {
		o.Platform.OS = "linux"
	}
	if o.Platform.Architecture == "" {
		o.Platform.Architecture = runtime.GOARCH
	}
	return nil
}

// build is the state of one Build call.
type build struct {
	plan    *parser.Plan
	opts    Options
	cache   *cache.Store // opts.Store's halves
	snaps   *snapshot.Store
	started time.Time
	stages  []*stageRun // nil for stages the target does not need
	nextID  atomic.Int64

	net     netState
	starter *container.Starter // RUN children started ahead of their step

	// ctxHashes are the remembered content hashes of each context
	// directory a COPY read (the build context, --build-context dirs).
	ctxMu     sync.Mutex
	ctxHashes map[string]*cache.ContextHashes
}

// stageRun is a stage being built: done closes when state or err is set.
type stageRun struct {
	done  chan struct{}
	state *imageState
	err   error
}

func (b *build) id() int { return int(b.nextID.Add(1)) }

// runStages builds the needed stages, each as soon as the stages it
// depends on are finished, at most Jobs at once.
func (b *build) runStages(ctx context.Context) (*imageState, error) {
	g, gctx := errgroup.WithContext(ctx)
	jobs := b.opts.Jobs
	if jobs <= 0 {
		jobs = len(b.plan.Stages)
	}
	sem := make(chan struct{}, jobs)
	for _, i := range b.plan.Needed() {
		i := i
		g.Go(func() error {
			run := b.stages[i]
			defer close(run.done)
			for _, d := range b.plan.Stages[i].Deps {
				if _, err := b.waitStage(gctx, d); err != nil {
					run.err = err
					return err
				}
			}
			select {
			case sem <- struct{}{}:
			case <-gctx.Done():
				run.err = gctx.Err()
				return run.err
			}
			defer func() { <-sem }()
			run.state, run.err = b.runStage(gctx, b.plan.Stages[i])
			return run.err
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return b.stages[b.plan.Target].state, nil
}

// waitStage returns the finished state of stage i.
func (b *build) waitStage(ctx context.Context, i int) (*imageState, error) {
	run := b.stages[i]
	if run == nil {
		return nil, fmt.Errorf("internal: stage %d is not scheduled", i)
	}
	select {
	case <-run.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if run.err != nil {
		// The failing stage reports its own error; dependents just stop.
		return nil, errStageFailed
	}
	return run.state, nil
}

var errStageFailed = errors.New("a stage this one needs failed")

// finish writes the target's config and manifest into the store.
func (b *build) finish(ctx context.Context, st *imageState) (*Result, error) {
	if err := b.limitLayers(ctx, st); err != nil {
		return nil, err
	}
	cfg := st.config()
	if len(b.opts.Labels) > 0 {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		maps.Copy(cfg.Config.Labels, b.opts.Labels)
	}
	cfg.Created = v1.Time{Time: st.created(b.opts.SourceDateEpoch)}
	descs := make([]v1.Descriptor, len(st.layers))
	for i, l := range st.layers {
		descs[i] = l.Descriptor
	}
	format := b.opts.Format
	if format == "" {
		format = cache.FormatDocker
		if b.opts.Compression.Format == "zstd" {
			format = cache.FormatOCI // Docker media types have no zstd layer
		}
	}
	rec, err := b.cache.PutImage(cfg, descs, format, b.opts.Compression)
	if err != nil {
		return nil, fmt.Errorf("writing image: %w", err)
	}
	b.ctxMu.Lock()
	for _, ch := range b.ctxHashes {
		if err := ch.Save(); err != nil {
			b.warn("could not save build-context hashes: %v", err)
		}
	}
	b.ctxMu.Unlock()
	res := &Result{Image: rec, Config: cfg, Steps: st.steps}
	seen := map[cache.Key]bool{}
	for _, s := range st.steps {
		seen[s.Key] = true
	}
	res.AllSteps = slices.Clone(st.steps)
	for _, run := range b.stages {
		if run == nil || run.state == nil {
			continue
		}
		for _, s := range run.state.steps {
			if !seen[s.Key] {
				seen[s.Key] = true
				res.AllSteps = append(res.AllSteps, s)
			}
		}
	}
	return res, nil
}

// warnUnusedArgs warns about --build-arg values no ARG declares, as
// docker does; the parser found them.
func (b *build) warnUnusedArgs() {
	for _, k := range b.plan.UnusedArgs {
		b.warn("[Warning] one or more build args were not consumed: %s", k)
	}
}

func (b *build) warn(format string, args ...any) {
	b.opts.Reporter.Report(Event{Kind: BuildWarning, Line: fmt.Sprintf(format, args...), Time: time.Now()})
}

// stageName is how events name a stage.
func stageName(s *parser.Stage) string {
	if s.Name != "" {
		return s.Name
	}
	return strconv.Itoa(s.Index)
}
