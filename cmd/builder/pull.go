package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/registry"
)

var cmdPull = &command{
	Name:  "pull",
	Args:  "[flags] REF",
	Short: "Pull an image from a registry into the local store",
	Long: `
Pull fetches an image from its registry into the local store, downloading
only the layers the store lacks, and names it REF. Credentials come from
the docker configuration (~/.docker/config.json or $DOCKER_CONFIG).
Registries on loopback addresses are reached over plain HTTP. The image ID
goes to stdout.`,
	Example: `builder pull 127.0.0.1:5000/busybox:latest`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerPullFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 1, "REF"); err != nil {
				return err
			}
			opts, err := f.options(env)
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
			store := st.Cache()
			r := newRenderer(mode, a.stderr, env, false)
			describe(r, "Pulling", 1)
			ref := args[0]
			start := time.Now()
			r.Report(executor.Event{Kind: executor.StepStarted, ID: 1, Name: "pull " + ref, Time: start})
			rec, err := registry.New(store, opts).PullWithProgress(ctx, ref, pullProgress(r, 1))
			if err != nil {
				r.Report(executor.Event{Kind: executor.StepFailed, ID: 1, Err: err, Time: time.Now()})
			} else {
				r.Report(executor.Event{Kind: executor.StepDone, ID: 1, Duration: time.Since(start), Time: time.Now()})
			}
			r.Close()
			if err != nil {
				return err // it names the image already
			}
			fmt.Fprintln(a.stdout, rec.ID)
			return nil
		}
	},
}
