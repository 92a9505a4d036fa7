package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/registry"
	"github.com/builderdev/builder/store"
)

var cmdPush = &command{
	Name:  "push",
	Args:  "[flags] IMAGE [DEST]",
	Short: "Push an image to a registry",
	Long: `
Push uploads an image of the local store to DEST, or to the registry its
name IMAGE points at. Only the layers the registry lacks are sent; a layer
that another repository of the same registry holds is mounted from there,
not sent. Transient errors (5xx, 429, resets, stalls) are retried, and a
push run again after an interruption sends only what is still missing.

Credentials come from the docker configuration (~/.docker/config.json or
$DOCKER_CONFIG) and its credential helpers. Registries on loopback
addresses are reached over plain HTTP; others only with
--insecure-registry or BUILDER_INSECURE_REGISTRIES. One line on stderr
says what moved; the manifest digest goes to stdout.`,
	Example: `
builder push registry.example.com/app:1.0
builder push app:1.0 127.0.0.1:5000/app:1.0 --digestfile app.digest`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerPushFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("push needs IMAGE and at most one DEST")
			}
			dest := args[len(args)-1]
			opts := registry.Options{Insecure: env.insecureRegistries(f.insecure)}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			rec, err := st.Cache().Lookup(args[0])
			if err != nil {
				return err // it names the image
			}
			mode, _ := env.progressMode("auto", false)
			rep, err := pushImage(ctx, a, st, rec, dest, opts, mode)
			if err != nil {
				return err
			}
			if f.digestfile != "" {
				if err := writeDigestFile(f.digestfile, rep); err != nil {
					return err
				}
			}
			fmt.Fprintln(a.stdout, rep.Manifest.Digest)
			return nil
		}
	},
}

type pushFlags struct {
	digestfile string
	insecure   []string
}

func registerPushFlags(fs *pflag.FlagSet) *pushFlags {
	f := &pushFlags{}
	fs.StringVar(&f.digestfile, "digestfile", "", "write the pushed manifest's digest to `FILE`")
	registerInsecureFlag(fs, &f.insecure)
	return f
}

// pushImage pushes rec to dest (see pushAll).
func pushImage(ctx context.Context, a *app, st *store.Store, rec cache.ImageRecord, dest string,
	opts registry.Options, mode string) (registry.PushReport, error) {
	client := registry.New(st.Cache(), opts)
	reps, err := pushAll(ctx, a, st, mode, []pushJob{imagePush(client, st, rec, dest)})
	if err != nil {
		return registry.PushReport{}, err
	}
	return reps[0], nil
}

// pushJob is one upload: an image to a tag, or a build cache to a ref.
type pushJob struct {
	name string // what the display calls it: "push REF"
	run  func(ctx context.Context, progress func(registry.PushProgress)) (registry.PushReport, error)
}

func imagePush(client *registry.Client, st *store.Store, rec cache.ImageRecord, dest string) pushJob {
	return pushJob{name: "push " + dest, run: func(ctx context.Context, progress func(registry.PushProgress)) (registry.PushReport, error) {
		img, err := st.Cache().ImageAs(ctx, rec.Manifest.Digest)
		if err != nil {
			return registry.PushReport{}, err
		}
		return client.Push(ctx, img, dest, progress)
	}}
}

// pushAll runs the jobs side by side under the store's build lock (so
// that a prune cannot take the blobs of an untagged image half way),
// shows each layer's upload, and ends with one line per job saying what
// moved. The first error stops the others.
func pushAll(ctx context.Context, a *app, st *store.Store, mode string, jobs []pushJob) ([]registry.PushReport, error) {
	reps := make([]registry.PushReport, len(jobs))
	r := newRenderer(mode, a.stderr, a.env, false)
	describe(r, "Pushing", len(jobs))
	err := st.Build(ctx, func() error {
		g, gctx := errgroup.WithContext(ctx)
		for i, j := range jobs {
			id := i + 1
			g.Go(func() error {
				start := time.Now()
				r.Report(executor.Event{Kind: executor.StepStarted, ID: id, Name: j.name, Time: start})
				rep, err := j.run(gctx, func(p registry.PushProgress) {
					r.Report(executor.Event{Kind: executor.StepProgress, ID: id, Label: p.Digest.String(),
						Current: p.Complete, Total: p.Total, Time: time.Now()})
				})
				if err != nil {
					r.Report(executor.Event{Kind: executor.StepFailed, ID: id, Err: err, Time: time.Now()})
					return err
				}
				r.Report(executor.Event{Kind: executor.StepDone, ID: id, Duration: time.Since(start), Time: time.Now()})
				reps[i] = rep
				return nil
			})
		}
		return g.Wait()
	})
	r.Close()
	if err != nil {
		return nil, err
	}
	if mode != "quiet" {
		for _, rep := range reps {
			fmt.Fprintln(a.stderr, pushSummary(rep))
		}
	}
	return reps, nil
}

// pushSummary is the one line a push ends with.
func pushSummary(rep registry.PushReport) string {
	layers := "layers"
	if rep.Uploaded == 1 {
		layers = "layer"
	}
	s := fmt.Sprintf("pushed %s: %d %s uploaded (%s), %d already present", rep.Ref, rep.Uploaded, layers,
		humanSize(rep.Bytes), rep.Present)
	if rep.Mounted > 0 {
		s += fmt.Sprintf(", %d mounted", rep.Mounted)
	}
	return s + "; manifest " + rep.Manifest.Digest.String()
}

// writeDigestFile writes the manifest digest, as podman's --digestfile.
func writeDigestFile(path string, rep registry.PushReport) error {
	if err := fsutil.WriteFileAtomic(path, []byte(rep.Manifest.Digest.String()), 0o644); err != nil {
		return fmt.Errorf("writing --digestfile: %w", err)
	}
	return nil
}
