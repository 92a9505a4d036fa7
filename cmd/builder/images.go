package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

var cmdImages = &command{
	Name:  "images",
	Args:  "",
	Short: "List the images in the local store",
	Long: `
Images lists every named image of the local store, one line per name, with
its ID, when it was created and the size of its blobs (compressed layers
and config).`,
	Example: `builder images`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 0, ""); err != nil {
				return err
			}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			store := st.Cache()
			recs, err := store.Images()
			if err != nil {
				return fmt.Errorf("listing images: %w", err)
			}
			tw := newTable(a.stdout, "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
			now := time.Now()
			for _, rec := range recs {
				info, err := loadImage(store, rec)
				if err != nil {
					return err
				}
				repo, tag := splitName(rec.Name)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", repo, tag, shortID(rec.ID),
					humanAge(info.config.Created.Time, now), humanSize(info.size()))
			}
			return tw.Flush()
		}
	},
}
