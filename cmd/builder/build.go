package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/registry"
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

RUN steps get their own network namespace with outbound access only
(through slirp4netns), as with docker build: the host's loopback services
are out of their reach. --network=host gives every step the host's
network; a Dockerfile's RUN --network=host is refused unless
--allow network.host grants it.`,
	Example: `
builder build -t app:1.0 --build-arg VERSION=1.0 .
builder build -f - -q . < Dockerfile
builder build --output type=docker,dest=app.tar -t app .
builder build --allow network.host -t app .   # the Dockerfile has RUN --network=host`,
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
	var tags []string
	for _, t := range cfg.tags {
		name, err := cache.NormalizeName(t)
		if err != nil {
			return usagef("invalid tag %q: %v", t, err)
		}
		tags = append(tags, name)
	}
	if fi, err := os.Stat(cfg.contextDir); err != nil {
		return fmt.Errorf("build context: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("build context %s is not a directory", cfg.contextDir)
	}
	plan, err := readPlan(a.stdin, cfg)
	if err != nil {
		return err
	}
	ignore, err := readIgnore(cfg)
	if err != nil {
		return err
	}
	store, snaps, err := a.stores()
	if err != nil {
		return err
	}
	defer store.Close()
	defer snaps.Close()
	// Held until the image is tagged and exported, so that a prune cannot
	// remove the new image in between.
	release, err := store.BuildLock(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the store: %w", err)
	}
	defer release()

	r := newRenderer(cfg.progress, a.stderr, a.env, len(plan.Stages) > 1)
	for _, w := range plan.Warnings {
		r.Report(executor.Event{Kind: executor.BuildWarning, Line: "[Warning] " + w, Time: time.Now()})
	}
	platform := cfg.exec.Platform
	client := registry.New(store, registry.Options{Platform: &platform, MaxLayerSize: snaps.MaxLayerSize()})
	opts := cfg.exec
	opts.Store, opts.Snapshots = store, snaps
	opts.Resolver = executor.NewResolver(store, client, cfg.pull)
	opts.Reporter = r
	opts.ContextDir = cfg.contextDir
	opts.Ignore = ignore
	opts.LockHeld = true
	res, err := executor.Build(ctx, plan, opts)
	r.Close()
	if err != nil {
		return err
	}

	return deliver(a, store, cfg, tags, res.Image)
}

// deliver does what the command line asks with a built image: tags,
// --output, --iidfile, and the image ID on stdout.
func deliver(a *app, store *cache.Store, cfg *buildConfig, tags []string, img cache.ImageRecord) error {
	for _, t := range tags {
		if err := store.Tag(t, img.Manifest); err != nil {
			return fmt.Errorf("tagging %s: %w", t, err)
		}
	}
	if o := cfg.output; o != nil {
		name := o.Name
		if name == "" && len(tags) > 0 {
			name = tags[0]
		}
		if err := exportImage(a, store, img, o.Type, o.Dest, name); err != nil {
			return err
		}
	}
	id := img.ID.String()
	if cfg.iidfile != "" {
		if err := os.WriteFile(cfg.iidfile, []byte(id), 0o644); err != nil {
			return fmt.Errorf("writing --iidfile: %w", err)
		}
	}
	// With --output to stdout, stdout is the archive.
	if cfg.output == nil || cfg.output.Dest != "-" {
		fmt.Fprintln(a.stdout, id)
	}
	return nil
}

// readPlan reads and parses the Dockerfile, from stdin for -f -.
func readPlan(stdin io.Reader, cfg *buildConfig) (*parser.Plan, error) {
	r := stdin
	if cfg.dockerfile != "-" {
		f, err := os.Open(cfg.dockerfile)
		if err != nil {
			return nil, fmt.Errorf("reading the Dockerfile: %w", err)
		}
		defer f.Close()
		r = f
	}
	return parser.Parse(r, cfg.parse)
}

// readIgnore reads the ignore file: <Dockerfile>.dockerignore beside the
// Dockerfile if there is one, else CONTEXT/.dockerignore, else none.
func readIgnore(cfg *buildConfig) (*parser.Ignore, error) {
	var candidates []string
	if cfg.dockerfile != "-" {
		candidates = append(candidates, cfg.dockerfile+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(cfg.contextDir, ".dockerignore"))
	for _, p := range candidates {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading ignore file: %w", err)
		}
		defer f.Close()
		ig, err := parser.ParseIgnore(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		return ig, nil
	}
	return nil, nil
}
