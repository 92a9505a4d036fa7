package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

var cmdDu = &command{
	Name:  "du",
	Args:  "[flags]",
	Short: "Show the disk space the store uses",
	Long: `
Du shows what the local store holds: named images, build-cache entries,
unpacked snapshots and blobs, with their sizes, and how much "builder
prune --all" would free. With -v it also lists every image and snapshot.`,
	Example: `builder du -v`,
	Setup: func(fset *pflag.FlagSet, env *environment) runFunc {
		o := registerDuFlags(fset)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 0, ""); err != nil {
				return err
			}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			u, err := st.Usage()
			if err != nil {
				return fmt.Errorf("measuring the store: %w", err)
			}
			tw := newTable(a.stdout, "TYPE", "COUNT", "SIZE")
			fmt.Fprintf(tw, "Images\t%d\t%s\n", u.Images, humanSize(u.ImagesSize))
			fmt.Fprintf(tw, "Cache entries\t%d\t%s\n", u.Entries, humanSize(u.EntriesSize))
			fmt.Fprintf(tw, "Snapshots\t%d\t%s\n", u.Snapshots, humanSize(u.SnapshotsSize))
			fmt.Fprintf(tw, "Blobs\t%d\t%s\n", u.Blobs, humanSize(u.BlobsSize))
			fmt.Fprintf(tw, "Cache mounts\t%d\t%s\n", u.CacheMounts, humanSize(u.CacheMountsSize))
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Reclaimable: %s\n", humanSize(u.Reclaimable))
			if !o.verbose {
				return nil
			}
			return duVerbose(a, st.Cache(), st.Snapshots())
		}
	},
}

func duVerbose(a *app, store *cache.Store, snaps *snapshot.Store) error {
	recs, err := store.Images()
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	fmt.Fprintln(a.stdout)
	tw := newTable(a.stdout, "IMAGE", "IMAGE ID", "SIZE")
	for _, rec := range recs {
		info, err := loadImage(store, rec)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", rec.Name, shortID(rec.ID), humanSize(info.size()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ids, err := snaps.List()
	if err != nil {
		return fmt.Errorf("listing snapshots: %w", err)
	}
	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout, "SNAPSHOT", "SIZE")
	for _, id := range ids {
		fmt.Fprintf(tw, "%s\t%s\n", truncate(string(id), 12), humanSize(dirSize(snaps.Dir(id))))
	}
	return tw.Flush()
}

// dirSize adds up the sizes of the regular files under dir; an entry it
// cannot read counts as nothing, since this is only a report.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
