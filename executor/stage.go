package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// historyComment marks history entries this builder wrote, as BuildKit
// marks its own with "buildkit.dockerfile.v0".
const historyComment = "builder.dockerfile.v0"

// stepCtx is one step as events and errors see it.
type stepCtx struct {
	b      *build
	id     int
	stage  string
	n, tot int
	name   string // "COPY . /app"
	step   parser.Step
	start  time.Time
}

func (sc *stepCtx) report(e Event) {
	e.ID, e.Stage, e.Step, e.Steps, e.Name = sc.id, sc.stage, sc.n, sc.tot, sc.name
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	sc.b.opts.Reporter.Report(e)
}

func (sc *stepCtx) log(format string, args ...any) {
	sc.report(Event{Kind: StepLog, Line: fmt.Sprintf(format, args...)})
}

// fail wraps err as the step's error, naming its place.
func (sc *stepCtx) fail(err error) error {
	var se *StepError
	if errors.As(err, &se) {
		return err
	}
	return &StepError{Pos: sc.step.Pos, Instruction: sc.step.Name, Err: err}
}

// isFSStep reports whether an instruction can change the filesystem and so
// is shown as a numbered step, as BuildKit shows them.
func isFSStep(name string) bool {
	switch name {
	case "RUN", "COPY", "ADD", "WORKDIR":
		return true
	}
	return false
}

func countFS(steps []parser.Step) int {
	n := 0
	for _, step := range steps {
		if isFSStep(step.Name) {
			n++
		}
	}
	return n
}

// runStage builds one stage: its base, the base's ONBUILD triggers, then
// its steps.
func (b *build) runStage(ctx context.Context, s *parser.Stage) (*imageState, error) {
	steps := s.Steps
	fromCtx := &stepCtx{b: b, id: b.id(), stage: stageName(s), name: "FROM " + baseText(s),
		step: parser.Step{Pos: s.Pos, Name: "FROM"}, start: time.Now(), n: 1, tot: countFS(steps) + 1}
	st, err := b.from(ctx, fromCtx, s)
	if err != nil {
		fromCtx.report(Event{Kind: StepFailed, Err: fromCtx.fail(err)})
		return nil, fromCtx.fail(err)
	}
	if triggers := st.cfg.Config.OnBuild; len(triggers) > 0 {
		st.cfg.Config.OnBuild = nil
		var pre []parser.Step
		for _, t := range triggers {
			step, err := b.plan.ParseTrigger(t, s.Pos)
			if err != nil {
				return nil, fromCtx.fail(fmt.Errorf("ONBUILD trigger %q: %w", t, err))
			}
			pre = append(pre, step)
		}
		// Before any trigger runs, as the Dockerfile's own steps are
		// checked before the build starts.
		if err := errors.Join(checkSteps(pre, &b.opts)...); err != nil {
			return nil, err // each names the FROM line
		}
		steps = append(pre, steps...)
	}
	total := countFS(steps) + 1
	fromCtx.tot = total
	fromCtx.report(Event{Kind: StepDone, Duration: time.Since(fromCtx.start)})

	n := 1
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sc := &stepCtx{b: b, stage: stageName(s), tot: total, step: step, name: step.Name + " " + stepArgs(step)}
		if isFSStep(step.Name) {
			n++
			sc.id, sc.n = b.id(), n
		}
		sc.start = time.Now()
		err := b.runStep(ctx, sc, s, st)
		if err == nil && isFSStep(step.Name) {
			// RUN history repeats the ARGs in scope: bound what the
			// steps add up to, as metadata steps are bounded.
			err = st.checkSize()
		}
		if err != nil {
			err = sc.fail(err)
			if sc.id != 0 {
				sc.report(Event{Kind: StepFailed, Err: err, Duration: time.Since(sc.start)})
			}
			return nil, err
		}
	}
	return st, nil
}

// stepArgs is the step's text after its instruction name.
func stepArgs(step parser.Step) string {
	t := strings.TrimSpace(step.Text)
	if i := strings.IndexAny(t, " \t"); i >= 0 {
		return strings.TrimSpace(t[i:])
	}
	return ""
}

func baseText(s *parser.Stage) string {
	switch s.Base.Kind {
	case parser.BaseScratch:
		return "scratch"
	case parser.BaseStage:
		return fmt.Sprintf("stage %d", s.Base.Stage)
	}
	return s.Base.Image
}

// runStep expands one step and dispatches it by kind.
func (b *build) runStep(ctx context.Context, sc *stepCtx, s *parser.Stage, st *imageState) error {
	ins, err := sc.step.Expand(st.expandEnv())
	if err != nil {
		return err
	}
	switch ins := ins.(type) {
	case *parser.Run:
		return b.stepRun(ctx, sc, st, ins)
	case *parser.Copy:
		return b.stepCopy(ctx, sc, st, ins)
	case *parser.Workdir:
		return b.stepWorkdir(ctx, sc, st, ins)
	case *parser.Arg:
		b.declareArgs(st, ins)
		return b.metaStep(sc, st, ins, argHistory(st, ins))
	default:
		if hc, ok := ins.(*parser.Healthcheck); ok && hc.StartInterval != 0 {
			// go-containerregistry's HealthConfig, which the image config
			// is written through, has no StartInterval.
			b.warn("%s: HEALTHCHECK --start-interval is not recorded in the image: builder's image config has no field for it yet", sc.step.Pos)
		}
		text, err := applyMeta(st, ins)
		if err != nil {
			return err
		}
		return b.metaStep(sc, st, ins, text)
	}
}

// metaStep records a step that changes only the config. Its cache entry
// keeps the history entry's time stable across rebuilds.
func (b *build) metaStep(sc *stepCtx, st *imageState, ins parser.Instruction, createdBy string) error {
	kb, err := keyMeta(st.lastKey, ins)
	if err != nil {
		return err
	}
	addEpoch(kb, b.opts.SourceDateEpoch)
	key := kb.Sum()
	b.debugKey(sc, kb)
	var h v1.History
	if e, err := b.lookup(sc, key); err == nil {
		h = e.History
	} else {
		h = b.history(createdBy, true)
		if err := b.cache.RecordStep(key, cache.Entry{Config: st.cfg.Config, History: h}); err != nil {
			return fmt.Errorf("recording cache entry: %w", err)
		}
	}
	st.cfg.History = append(st.cfg.History, h)
	st.lastKey = key
	st.steps = append(st.steps, cache.Step{Key: key, Entry: cache.Entry{Config: st.cfg.Config, History: h}})
	return nil
}

// fsStep runs a step that may change the filesystem: a cache hit reuses
// the recorded layer and history; a miss prepares a snapshot on the
// chain, lets exec write into it, and commits the upper dir as a layer.
func (b *build) fsStep(ctx context.Context, sc *stepCtx, st *imageState, kb *cache.KeyBuilder, createdBy string,
	exec func(ctx context.Context, a *snapshot.Active) error) error {
	addEpoch(kb, b.opts.SourceDateEpoch)
	key := kb.Sum()
	b.debugKey(sc, kb)
	sc.report(Event{Kind: StepStarted})
	cached, err := b.lookup(sc, key)
	if err == nil && !b.opts.VerifyCache {
		b.apply(st, key, cached.Layer, cached.History)
		sc.report(Event{Kind: StepCached})
		return nil
	}
	verify := err == nil
	if err := b.ensureChain(ctx, sc, st); err != nil {
		return err
	}
	a, err := b.snaps.Prepare(ctx, st.chain())
	if err != nil {
		return fmt.Errorf("preparing snapshot: %w", err)
	}
	defer a.Close()
	if err := exec(ctx, a); err != nil {
		return err
	}
	layer, err := b.commitUpper(ctx, sc, a)
	if err != nil {
		return err
	}
	if verify {
		b.verifyHit(sc, cached, layer)
	}
	h := b.history(createdBy, layer == nil)
	if err := b.cache.RecordStep(key, cache.Entry{Layer: layer, Config: st.cfg.Config, History: h}); err != nil {
		return fmt.Errorf("recording cache entry: %w", err)
	}
	b.apply(st, key, layer, h)
	sc.report(Event{Kind: StepDone, Duration: time.Since(sc.start)})
	return nil
}

// verifyHit compares the layer a step made again with the one its cache
// entry holds.
func (b *build) verifyHit(sc *stepCtx, cached cache.Entry, layer *cache.Layer) {
	diff := func(l *cache.Layer) string {
		if l == nil {
			return "no layer"
		}
		return l.DiffID.String()
	}
	if got, want := diff(layer), diff(cached.Layer); got != want {
		b.warn("cache verify: %s %s: cached result %s, rebuilt %s", sc.step.Pos, sc.name, want, got)
	}
}

func (b *build) apply(st *imageState, key cache.Key, layer *cache.Layer, h v1.History) {
	if layer != nil {
		st.layers = append(st.layers, *layer)
	}
	h.EmptyLayer = layer == nil
	st.cfg.History = append(st.cfg.History, h)
	st.fsKey, st.lastKey = key, key
	st.steps = append(st.steps, cache.Step{Key: key, Entry: cache.Entry{Layer: layer, Config: st.cfg.Config, History: h}})
}

// lookup consults the step cache unless the build or stage disables it:
// the store first, then the entries imported with --cache-from. An
// imported hit is not recorded in the store: its layer may exist only in
// a registry until a step needs it (see ensureChain).
func (b *build) lookup(sc *stepCtx, key cache.Key) (cache.Entry, error) {
	if b.opts.NoCache || slices.ContainsFunc(b.opts.NoCacheStages, func(n string) bool { return strings.EqualFold(n, sc.stage) }) {
		return cache.Entry{}, cache.ErrNotFound
	}
	e, err := b.cache.LookupStep(key)
	if errors.Is(err, cache.ErrNotFound) {
		if imp, ok := b.opts.CacheImports[key]; ok {
			return imp, nil
		}
	}
	return e, err
}

func (b *build) history(createdBy string, empty bool) v1.History {
	t := time.Now().UTC()
	if b.opts.SourceDateEpoch != nil {
		t = b.opts.SourceDateEpoch.UTC()
	}
	return v1.History{Created: v1.Time{Time: t}, CreatedBy: createdBy, Comment: historyComment, EmptyLayer: empty}
}

func (b *build) debugKey(sc *stepCtx, kb *cache.KeyBuilder) {
	if !b.opts.DebugKeys {
		return
	}
	key := kb.Sum()
	b.opts.Reporter.Report(Event{Kind: BuildWarning, Time: time.Now(),
		Line: fmt.Sprintf("key %s for %s %q:\n  %s", key.String()[:16], sc.step.Pos, sc.name, strings.Join(kb.Fields(), "\n  "))})
}

// ensureChain makes sure every layer of the chain is unpacked as a
// snapshot; layers that came from the cache or a registry are unpacked
// here, once, from their blobs.
func (b *build) ensureChain(ctx context.Context, sc *stepCtx, st *imageState) error {
	return ensureLayers(ctx, b.cache, b.snaps, st.layers, b.opts.FetchLayer)
}

// commitUpper hashes the active snapshot's upper dir as a layer and
// turns the upper dir into the committed snapshot that holds it: no tar
// is written and nothing is compressed until the layer leaves the
// machine (see cache/held.go). It returns nil when the step changed
// nothing.
func (b *build) commitUpper(ctx context.Context, sc *stepCtx, a *snapshot.Active) (*cache.Layer, error) {
	empty, err := dirEmpty(a.Upper())
	if err != nil || empty {
		return nil, err
	}
	// The marker CommitLayer writes records these options, so that the
	// snapshot can give the same tar again.
	wopts := snapshot.WriteOptions{SourceDateEpoch: b.opts.SourceDateEpoch}
	last := time.Now()
	layer, err := cache.HoldLayer(ctx, func(w io.Writer) error {
		return snapshot.WriteLayer(w, a.Upper(), wopts)
	}, func(n int64) {
		if time.Since(last) > 100*time.Millisecond {
			last = time.Now()
			sc.report(Event{Kind: StepProgress, Label: "layer", Current: n})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	id := snapshot.ID(layer.DiffID.Hex)
	if b.snaps.Exists(id) && !b.cache.HasLayer(layer.Descriptor) {
		// The same layer is already unpacked, from a pulled tar: that
		// snapshot cannot make our tar again, so this one layer is
		// stored as a blob, from the upper dir, as commits once were.
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(snapshot.WriteLayer(pw, a.Upper(), wopts)) }()
		layer, err = b.cache.PutLayer(ctx, pr, b.opts.Compression, nil)
		pr.CloseWithError(errors.New("layer write stopped"))
		if err != nil {
			return nil, fmt.Errorf("writing layer: %w", err)
		}
	}
	if err := a.CommitLayer(id, wopts); err != nil {
		return nil, fmt.Errorf("committing snapshot: %w", err)
	}
	return &layer, nil
}

func dirEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}
