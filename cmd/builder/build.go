package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/registry"
	"github.com/builderdev/builder/store"
)

var cmdBuild = &command{
	Name:  "build",
	Args:  "[flags] CONTEXT",
	Short: "Build an image from a Dockerfile",
	Long: `
Build runs the Dockerfile (CONTEXT/Dockerfile unless -f says otherwise) on
the build context directory CONTEXT and stores the image in the local store.
Steps whose inputs did not change come from the build cache. The image ID
goes to stdout; progress and errors go to stderr.

A .dockerignore file beside the Dockerfile (named after it, e.g.
Dockerfile.prod.dockerignore) or else in CONTEXT excludes files from COPY
and ADD. SOURCE_DATE_EPOCH, in the environment or as a --build-arg, clamps
file times and sets the creation time, so the same inputs give the same
image ID.

An image is kept within --max-layers layers (125 by default, docker's
limit): the bottom layers the build added are merged, one line says which
steps, and the history keeps every step. --squash makes the build's layers
one layer, --squash-all the whole image. The per-step layers stay in the
build cache.

RUN steps get their own network namespace with outbound access only
(through slirp4netns), as with docker build: the host's loopback services
are out of their reach. --network=host gives every step the host's
network; a Dockerfile's RUN --network=host is refused unless
--allow network.host grants it.`,
	Example: `
builder build -t app:1.0 --build-arg VERSION=1.0 .
builder build -f - -q . < Dockerfile
builder build --output type=docker,dest=app.tar -t app .
builder build --allow network.host -t app .   # the Dockerfile has RUN --network=host
builder build -t app - < context.tar.gz       # the context as a tar archive on stdin
builder build -o type=local,dest=rootfs .     # the image's files, in a directory
builder build --build-context base=docker-image://alpine:3 --metadata-file meta.json .`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerBuildFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			cfg, err := env.buildConfig(f, args)
			if err != nil {
				return err
			}
			return runBuild(ctx, a, cfg)
		}
	},
}

func runBuild(ctx context.Context, a *app, cfg *buildConfig) error {
	if cfg.stdinContext {
		cleanup, err := contextFromStdin(cfg, a.stdin)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	req := cfg.req
	if req.Stdin == nil {
		req.Stdin = a.stdin
	}
	for i, o := range req.Outputs {
		if o.Dest == "-" {
			req.Outputs[i].Writer = a.stdout
		}
	}
	prep, err := executor.Prepare(req)
	if err != nil {
		return err
	}
	st, err := a.open()
	if err != nil {
		return err
	}
	defer st.Close()

	r := newRenderer(cfg.progress, a.stderr, a.env, len(prep.Plan.Stages) > 1)
	describe(r, "Building", executor.StepCount(prep.Plan))
	for _, w := range prep.Plan.Warnings {
		r.Report(executor.Event{Kind: executor.BuildWarning, Line: "[Warning] " + w, Time: time.Now()})
	}
	platform := req.Options.Platform
	client := registry.New(st.Cache(), registry.Options{Platform: &platform, MaxLayerSize: st.Snapshots().MaxLayerSize(),
		Insecure: cfg.insecure, LazyLayers: true})
	prep.Options().Resolver = registry.NewResolver(st.Cache(), client, cfg.pull)
	prep.Options().Reporter = r
	// Imports, the build and the exports share the store's build lock, so
	// that a prune cannot remove what an import stored or the image a push
	// is about to send before anything names it.
	var res *executor.Result
	var pushed []registry.PushReport
	closeRenderer := sync.OnceFunc(r.Close)
	defer closeRenderer()
	err = st.Build(ctx, func() error {
		prep.Options().CacheImports = importCaches(ctx, client, cfg.cacheFrom, r)
		prep.Options().FetchLayer = client.FetchLayer
		var err error
		res, err = prep.Run(ctx, st)
		closeRenderer()
		if err != nil {
			return err
		}
		pushed, err = exportAll(ctx, a, st, client, cfg, res)
		return err
	})
	if err != nil {
		return err
	}
	return deliver(a, cfg, res.Image, pushed)
}

// exportAll pushes the image and the build cache as the flags say, and
// returns the reports of the pushes.
func exportAll(ctx context.Context, a *app, st *store.Store, client *registry.Client, cfg *buildConfig, res *executor.Result) ([]registry.PushReport, error) {
	var jobs []pushJob
	for _, dest := range cfg.pushes {
		jobs = append(jobs, imagePush(client, st, res.Image, dest))
	}
	for _, cs := range cfg.cacheTo {
		steps := res.Steps
		if cs.max {
			steps = res.AllSteps
		}
		if cs.typ == "local" {
			if err := client.ExportCacheDir(ctx, cs.ref, steps); err != nil {
				return nil, err
			}
			continue
		}
		jobs = append(jobs, pushJob{name: "export cache to " + cs.ref,
			run: func(ctx context.Context, progress func(registry.PushProgress)) (registry.PushReport, error) {
				return client.PushCache(ctx, cs.ref, steps, progress)
			}})
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	return pushAll(ctx, a, st, cfg.progress, jobs)
}

// importCaches reads every --cache-from, the first one's entry winning
// for a key. A cache that cannot be read is one warning, never an error:
// the build then runs the steps it would have taken from there.
func importCaches(ctx context.Context, client *registry.Client, specs []cacheSpec, r executor.Reporter) map[cache.Key]cache.Entry {
	out := map[cache.Key]cache.Entry{}
	for _, cs := range specs {
		var entries map[cache.Key]cache.Entry
		var err error
		if cs.typ == "local" {
			entries, err = client.ImportCacheDir(cs.ref)
		} else {
			entries, err = client.ImportCache(ctx, cs.ref)
		}
		if err != nil {
			r.Report(executor.Event{Kind: executor.BuildWarning, Time: time.Now(),
				Line: fmt.Sprintf("[Warning] --cache-from %s not used: %v", cs.spec, err)})
			continue
		}
		for k, e := range entries {
			if _, ok := out[k]; !ok {
				out[k] = e
			}
		}
	}
	return out
}

// deliver does what is left once the image is built, tagged and
// exported: --iidfile, --metadata-file, and the image ID on stdout.
func deliver(a *app, cfg *buildConfig, img cache.ImageRecord, pushed []registry.PushReport) error {
	id := img.ID.String()
	if cfg.iidfile != "" {
		if err := fsutil.WriteFileAtomic(cfg.iidfile, []byte(id), 0o644); err != nil {
			return fmt.Errorf("writing --iidfile: %w", err)
		}
	}
	if err := writeMetadata(cfg, img, pushed); err != nil {
		return err
	}
	// With an output to stdout, stdout is the archive.
	for _, o := range cfg.req.Outputs {
		if o.Dest == "-" {
			return nil
		}
	}
	fmt.Fprintln(a.stdout, id)
	return nil
}
