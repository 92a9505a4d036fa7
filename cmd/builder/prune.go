package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/store"
)

var cmdPrune = &command{
	Name:  "prune",
	Args:  "[flags]",
	Short: "Remove build cache entries and unused data",
	Long: `
Prune removes build-cache entries, least recently used first, then the
blobs and snapshots that no named image and no remaining entry needs. It
never removes what a named image needs, and it waits for running builds.
--keep-storage stops once the cache fits in SIZE (binary units, as
docker's: 1GB is 1024MB), --filter until= spares entries used more
recently than DURATION, and --all removes every entry and every snapshot
that blobs can rebuild (a built layer's snapshot stays while an image needs
it: it is the layer's only copy until it is pushed or saved). Every prune
removes the RUN --mount=type=cache directories; --filter
type=exec.cachemount removes only those. It prints what it removed.`,
	Example: `
builder prune --keep-storage 10GB
builder prune --filter until=24h
builder prune --all
builder prune --filter type=exec.cachemount
builder prune -f   # docker's scripts pass -f; prune never asks`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerPruneFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 0, ""); err != nil {
				return err
			}
			opts, err := f.options()
			if err != nil {
				return err
			}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			prune := st.Prune
			if f.mountsOnly {
				prune = func(ctx context.Context, _ cache.PruneOptions) (store.PruneReport, error) {
					return st.PruneCacheMounts(ctx)
				}
			}
			rep, err := prune(ctx, opts)
			if err != nil {
				return fmt.Errorf("pruning: %w", err)
			}
			fmt.Fprintf(a.stdout, "Deleted %d cache entries, %d blobs, %d snapshots, %d cache mounts\n", rep.Entries, rep.Blobs, rep.Snapshots, rep.CacheMounts)
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(rep.Reclaimed))
			return nil
		}
	},
}
