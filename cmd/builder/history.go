package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"
)

var cmdHistory = &command{
	Name:  "history",
	Args:  "[flags] IMAGE",
	Short: "Show how an image was built, newest step first",
	Long: `
History lists the history entries of an image, newest first, as "docker
history" does: the step that made each one, when, and the size of its
layer (0B for steps that changed only the config). Only the newest entry
is an image of its own; the others show <missing>.`,
	Example: `builder history --no-trunc app:1.0`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		o := registerHistoryFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 1, "IMAGE"); err != nil {
				return err
			}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			store := st.Cache()
			rec, err := store.Lookup(args[0])
			if err != nil {
				return err // it names the image
			}
			info, err := loadImage(store, rec)
			if err != nil {
				return err
			}
			id := shortID(rec.ID)
			if o.noTrunc {
				id = rec.ID.String()
			}
			tw := newTable(a.stdout, "IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")
			now := time.Now()
			for i, row := range historyRows(info) {
				image := "<missing>"
				if i == 0 {
					image = id
				}
				by := strings.Join(strings.Fields(row.CreatedBy), " ")
				if !o.noTrunc {
					by = truncate(by, 45)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", image, humanAge(row.Created.Time, now), by, humanSize(row.size), row.Comment)
			}
			return tw.Flush()
		}
	},
}

type historyRow struct {
	v1.History
	size int64
}

// historyRows pairs history entries with the layers they made, newest
// first. Each entry that is not an empty_layer made the next layer in
// order. An image without history gets one row per layer.
func historyRows(info *imageInfo) []historyRow {
	layers := info.manifest.Layers
	hist := info.config.History
	if len(hist) == 0 {
		hist = make([]v1.History, len(layers))
	}
	rows := make([]historyRow, 0, len(hist))
	next := 0
	for _, h := range hist {
		row := historyRow{History: h}
		if !h.EmptyLayer && next < len(layers) {
			row.size = layers[next].Size
			next++
		}
		rows = append(rows, row)
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	return rows
}
