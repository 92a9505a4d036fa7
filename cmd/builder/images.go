package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
)

var cmdImages = &command{
	Name:  "images",
	Args:  "[flags] [REPOSITORY[:TAG]]",
	Short: "List the images in the local store",
	Long: `
Images lists every named image of the local store, one line per name, with
its ID, when it was created and the size of its blobs (compressed layers
and config). REPOSITORY[:TAG] lists only the names that match it; it may
hold shell patterns (app*, app:1.*), as docker's does.`,
	Example: `
builder images
builder images app
builder images -q app:1.0
builder images --format '{{.Repository}}:{{.Tag}} {{.ID}}'
builder images --format 'table {{.Repository}}\t{{.Size}}'
builder images --tree`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerImagesFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			o, err := f.options(args)
			if err != nil {
				return err
			}
			out, err := newImagesOutput(a.stdout, o)
			if err != nil {
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
			if o.tree {
				var shown []cache.ImageRecord
				for _, rec := range recs {
					if repo, tag := splitName(rec.Name); matchesAny(o.patterns, repo, tag) {
						shown = append(shown, rec)
					}
				}
				return writeImageTree(a.stdout, store, shown)
			}
			now := time.Now()
			for _, rec := range recs {
				repo, tag := splitName(rec.Name)
				if !matchesAny(o.patterns, repo, tag) {
					continue
				}
				info, err := loadImage(store, rec)
				if err != nil {
					return err
				}
				if err := out.row(imageRow(rec, info, now, o.noTrunc)); err != nil {
					return err
				}
			}
			return out.flush()
		}
	},
}

// imageLine is one line of `images`, with the field names docker's
// --format templates use.
type imageLine struct {
	Repository   string
	Tag          string
	ID           string
	Digest       string
	CreatedSince string
	CreatedAt    string
	Size         string
	Containers   string
}

func imageRow(rec cache.ImageRecord, info *imageInfo, now time.Time, noTrunc bool) imageLine {
	repo, tag := splitName(rec.Name)
	l := imageLine{Repository: repo, Tag: tag, ID: shortID(rec.ID), Digest: rec.Manifest.Digest.String(),
		CreatedSince: humanAge(info.config.Created.Time, now), Size: humanSize(info.size()), Containers: "N/A"}
	if noTrunc {
		l.ID = rec.ID.String()
	}
	if !info.config.Created.IsZero() {
		l.CreatedAt = info.config.Created.Local().Format("2006-01-02 15:04:05 -0700 MST")
	}
	return l
}

// matchesAny reports whether repo:tag matches one of the patterns (all
// match when there are none): a pattern with a tag matches both, one
// without matches the repository, with path.Match's wildcards.
func matchesAny(patterns []string, repo, tag string) bool {
	for _, p := range patterns {
		pr, pt := p, ""
		if i := strings.LastIndex(p, ":"); i >= 0 && !strings.Contains(p[i:], "/") {
			pr, pt = p[:i], p[i+1:]
		}
		if familiar, err := cache.NormalizeName(pr); err == nil && !strings.ContainsAny(pr, "*?[") {
			pr, _ = splitName(familiar) // docker.io/library/app is app
		}
		if ok, _ := path.Match(pr, repo); !ok {
			continue
		}
		if ok, _ := path.Match(pt, tag); pt == "" || ok {
			return true
		}
	}
	return len(patterns) == 0
}

// imagesOutput writes the lines as the flags say: a table, IDs only, a
// template (with a header for "table …"), or JSON lines.
type imagesOutput struct {
	w      io.Writer
	quiet  bool
	json   bool
	tmpl   *template.Template
	header bool
	lines  []imageLine
}

func newImagesOutput(w io.Writer, o imagesOptions) (*imagesOutput, error) {
	out := &imagesOutput{w: w, quiet: o.quiet}
	format := o.format
	switch {
	case o.quiet:
	case format == "json":
		out.json = true
	case format == "" || format == "table":
		format = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
		fallthrough
	default:
		text, table := strings.CutPrefix(format, "table ")
		// as docker's formatter, which scripts quote with '…\t…'
		text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.TrimSpace(text))
		t, err := parseFormat(text)
		if err != nil {
			return nil, err
		}
		out.tmpl, out.header = t, table
	}
	return out, nil
}

func (o *imagesOutput) row(l imageLine) error {
	switch {
	case o.quiet:
		_, err := fmt.Fprintln(o.w, l.ID)
		return err
	case o.json:
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.w, "%s\n", b)
		return err
	}
	o.lines = append(o.lines, l)
	return nil
}

// flush writes the template lines, aligned in columns when the format
// was a table, with docker's column names as its header.
func (o *imagesOutput) flush() error {
	if o.tmpl == nil {
		return nil
	}
	var w io.Writer = o.w
	if o.header {
		tw := tabwriter.NewWriter(o.w, 10, 1, 3, ' ', 0)
		defer tw.Flush()
		w = tw
		h := imageLine{Repository: "REPOSITORY", Tag: "TAG", ID: "IMAGE ID", Digest: "DIGEST", CreatedSince: "CREATED",
			CreatedAt: "CREATED AT", Size: "SIZE", Containers: "CONTAINERS"}
		o.lines = append([]imageLine{h}, o.lines...)
	}
	for _, l := range o.lines {
		var b strings.Builder
		if err := o.tmpl.Execute(&b, l); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		if _, err := fmt.Fprintln(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}
