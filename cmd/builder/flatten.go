package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/registry"
)

var cmdFlatten = &command{
	Name:  "flatten",
	Args:  "[flags] SRC",
	Short: "Merge an image's layers, keeping its history",
	Long: `
Flatten makes a copy of the image SRC (a local image, else pulled from its
registry) with at most --max-layers layers, one by default: the same
filesystem (deleted files stay deleted, hardlinks, owners, modes, times
and xattrs kept), the same config, and every history entry, those whose
layers were merged marked empty_layer, plus one entry per merged layer
saying which steps it holds. Layers are merged bottom first and the top
ones stay single (docs/layers.md). A layer that is missing or does not
match its digest fails the command, naming it, before anything is written.

-t names the result; --push DEST uploads it (only the blobs DEST lacks).
The image ID goes to stdout.`,
	Example: `
builder flatten -t app:flat app:1.0
builder flatten --max-layers 50 --push 127.0.0.1:5000/app:slim 127.0.0.1:5000/app:1.0`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := &flattenFlags{}
		fs.StringArrayVarP(&f.tags, "tag", "t", nil, "name the result `NAME[:TAG]` (repeatable)")
		fs.StringArrayVar(&f.pushes, "push", nil, "push the result to `DEST` (repeatable)")
		registerMaxLayersFlag(fs, &f.maxLayers, 1)
		f.pull = registerPullFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 1, "SRC"); err != nil {
				return err
			}
			return runFlatten(ctx, a, env, f, args[0])
		}
	},
}

type flattenFlags struct {
	tags, pushes []string
	maxLayers    int
	pull         *pullFlags
}

func runFlatten(ctx context.Context, a *app, env *environment, f *flattenFlags, src string) error {
	max, err := checkMaxLayers(f.maxLayers)
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		// What flatten holds is a few buffers and the set of paths; the
		// rest is garbage of the streams. Measured on a 1 GiB, 200-layer
		// image flattened to 50 layers: 67 MB peak RSS with the default
		// GC, 50 MB with this soft limit, and no slower.
		debug.SetMemoryLimit(40 << 20)
	}
	opts, err := f.pull.options(env)
	if err != nil {
		return err
	}
	platform, err := parsePlatform(f.pull.platform)
	if err != nil {
		return err
	}
	if opts.MaxLayerSize, err = env.maxLayerSize(); err != nil {
		return err
	}
	mode, _ := env.progressMode("auto", false)
	st, err := a.open()
	if err != nil {
		return err
	}
	defer st.Close()
	// A pulled source's layers are not downloaded as blobs: the merge
	// unpacks each from the registry once (StreamLayer), and the layers
	// the result keeps are fetched, or mounted, only if it is pushed.
	opts.LazyLayers = true
	client := registry.New(st.Cache(), opts)
	r := newRenderer(mode, a.stderr, env, false)
	closeRenderer := sync.OnceFunc(r.Close)
	defer closeRenderer()
	var out cache.ImageRecord
	// The flattened image is untagged until -t names it: the build lock
	// keeps a prune away until then, and through the pushes.
	err = st.Build(ctx, func() error {
		step := func(id int, name string, fn func() error) error {
			start := time.Now()
			r.Report(executor.Event{Kind: executor.StepStarted, ID: id, Name: name, Time: start})
			if err := fn(); err != nil {
				r.Report(executor.Event{Kind: executor.StepFailed, ID: id, Err: err, Time: time.Now()})
				return err
			}
			r.Report(executor.Event{Kind: executor.StepDone, ID: id, Duration: time.Since(start), Time: time.Now()})
			return nil
		}
		var rec cache.ImageRecord
		err := step(1, "resolve "+src, func() error {
			var err error
			rec, err = registry.NewResolver(st.Cache(), client, registry.PullMissing).ResolveWithProgress(ctx, src, platform,
				func(label string, current, total int64) {
					r.Report(executor.Event{Kind: executor.StepProgress, ID: 1, Label: label, Current: current, Total: total, Time: time.Now()})
				})
			return err
		})
		if err == nil {
			err = step(2, fmt.Sprintf("merge layers (at most %d)", max), func() error {
				var err error
				out, _, err = executor.Flatten(ctx, st, rec, executor.FlattenOptions{MaxLayers: max, Reporter: r,
					FetchLayer: client.FetchLayer, StreamLayer: client.StreamLayer})
				return err
			})
		}
		closeRenderer()
		if err != nil {
			return err
		}
		for _, t := range f.tags {
			if err := st.Cache().Tag(t, out.Manifest); err != nil {
				return fmt.Errorf("tagging %s: %w", t, err)
			}
		}
		var jobs []pushJob
		for _, dest := range f.pushes {
			jobs = append(jobs, imagePush(client, st, out, dest))
		}
		if len(jobs) == 0 {
			return nil
		}
		_, err = pushAll(ctx, a, st, mode, jobs)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, out.ID)
	return nil
}
