package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
)

var cmdInspect = &command{
	Name:  "inspect",
	Args:  "[flags] IMAGE...",
	Short: "Show an image's details as JSON",
	Long: `
Inspect prints a JSON array with one object per image, in the shape of
"docker image inspect": Id, RepoTags, RepoDigests (if any), Created,
Architecture, Os, Config, RootFS, Size. IMAGE is a name, an ID or a unique
ID prefix. With --format, each image goes through a Go template instead,
with docker's functions (json, join, split, lower, upper, title, pad,
truncate), on the fields of that JSON.`,
	Example: `
builder inspect app:1.0
builder inspect -f '{{.Id}}' app:1.0
builder inspect --format '{{json .Config}}' app:1.0
builder inspect -f '{{index .RepoTags 0}} {{.Size}}' app:1.0 app:2.0`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerInspectFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) == 0 {
				return usagef("missing IMAGE")
			}
			var tmpl *template.Template
			if f.format != "" {
				var err error
				if tmpl, err = parseFormat(f.format); err != nil {
					return err
				}
			}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			store := st.Cache()
			all, err := store.Images()
			if err != nil {
				return fmt.Errorf("listing images: %w", err)
			}
			out := []inspectImage{}
			failed := false
			for _, arg := range args {
				ii, err := inspectOne(store, all, arg)
				if err != nil {
					printError(a.stderr, err)
					failed = true
					continue
				}
				if tmpl != nil {
					if err := executeJSON(a.stdout, tmpl, ii); err != nil {
						return err
					}
					continue
				}
				out = append(out, ii)
			}
			if tmpl != nil {
				if failed {
					return errReported
				}
				return nil
			}
			data, err := json.MarshalIndent(out, "", "    ")
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s\n", data)
			if failed {
				return errReported
			}
			return nil
		}
	},
}

// inspectImage is the shape of `docker image inspect`, for tools and
// people who know it; it is output only.
type inspectImage struct {
	ID           string   `json:"Id"`
	RepoTags     []string `json:"RepoTags"`
	RepoDigests  []string `json:"RepoDigests,omitempty"`
	Created      string   `json:"Created"`
	Author       string   `json:"Author"`
	Config       v1.Config
	Architecture string `json:"Architecture"`
	Variant      string `json:"Variant,omitempty"`
	Os           string `json:"Os"`
	OsVersion    string `json:"OsVersion,omitempty"`
	Size         int64  `json:"Size"`
	RootFS       struct {
		Type   string   `json:"Type"`
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
}

func inspectOne(store *cache.Store, all []cache.ImageRecord, ref string) (inspectImage, error) {
	var ii inspectImage
	rec, err := store.Lookup(ref)
	if err != nil {
		return ii, err // it names the image
	}
	info, err := loadImage(store, rec)
	if err != nil {
		return ii, err
	}
	cfg := info.config
	ii.ID = rec.ID.String()
	ii.RepoTags = []string{}
	for _, r := range all {
		switch {
		case r.ID != rec.ID:
		case strings.Contains(r.Name, "@"):
			ii.RepoDigests = append(ii.RepoDigests, r.Name)
		default:
			ii.RepoTags = append(ii.RepoTags, r.Name)
		}
	}
	if !cfg.Created.IsZero() {
		ii.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	ii.Author, ii.Config = cfg.Author, cfg.Config
	ii.Architecture, ii.Variant, ii.Os, ii.OsVersion = cfg.Architecture, cfg.Variant, cfg.OS, cfg.OSVersion
	ii.Size = info.size()
	ii.RootFS.Type = cfg.RootFS.Type
	if ii.RootFS.Type == "" {
		ii.RootFS.Type = "layers"
	}
	ii.RootFS.Layers = []string{}
	for _, d := range cfg.RootFS.DiffIDs {
		ii.RootFS.Layers = append(ii.RootFS.Layers, d.String())
	}
	return ii, nil
}

// imageInfo is a stored image's config and manifest.
type imageInfo struct {
	config   *v1.ConfigFile
	manifest *v1.Manifest
	store    *cache.Store
}

func loadImage(store *cache.Store, rec cache.ImageRecord) (*imageInfo, error) {
	img, err := store.Image(rec.Manifest.Digest)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", shortID(rec.ID), err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config of image %s: %w", shortID(rec.ID), err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest of image %s: %w", shortID(rec.ID), err)
	}
	return &imageInfo{config: cfg, manifest: m, store: store}, nil
}

// size is the image's size as docker shows it: its layers uncompressed
// (cache.Store.UncompressedSize), and its config.
func (i *imageInfo) size() int64 {
	n := i.manifest.Config.Size
	for k, l := range i.manifest.Layers {
		var diffID v1.Hash
		if k < len(i.config.RootFS.DiffIDs) {
			diffID = i.config.RootFS.DiffIDs[k]
		}
		n += i.store.UncompressedSize(l, diffID)
	}
	return n
}
