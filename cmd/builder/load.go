package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/registry"
	"github.com/builderdev/builder/snapshot"
)

var cmdLoad = &command{
	Name:  "load",
	Args:  "[-i FILE|DIR]",
	Short: "Load images from a docker save or OCI archive",
	Long: `
Load reads images into the local store from a "docker save" archive, an
OCI archive (builder save --format oci, skopeo's oci-archive) or an OCI
layout directory, from FILE or DIR, or from stdin (plain or compressed).
Only the layers the store lacks are written, each checked against the
image's diff IDs; the names the archive records are given to the images.`,
	Example: `
builder load -i app.tar
builder save app:1 -o - | builder --root /srv/other load
builder load -i ./layout`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerLoadFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 0, ""); err != nil {
				return err
			}
			src, cleanup, err := loadSource(f.input, a.stdin)
			if err != nil {
				return err
			}
			defer cleanup()
			images, done, err := archiveImages(src)
			if err != nil {
				return err
			}
			defer done()
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			client := registry.New(st.Cache(), registry.Options{MaxLayerSize: st.Snapshots().MaxLayerSize()})
			for _, im := range images {
				rec, err := client.Load(ctx, im.img, im.names, nil)
				if err != nil {
					return fmt.Errorf("loading from %s: %w", src, err)
				}
				for _, n := range im.names {
					fmt.Fprintf(a.stdout, "Loaded image: %s\n", n)
				}
				if len(im.names) == 0 {
					fmt.Fprintf(a.stdout, "Loaded image ID: %s\n", rec.ID)
				}
			}
			return nil
		}
	},
}

type loadFlags struct{ input string }

func registerLoadFlags(fs *pflag.FlagSet) *loadFlags {
	f := &loadFlags{}
	fs.StringVarP(&f.input, "input", "i", "", "read the archive `FILE`, or the OCI layout DIR (default stdin)")
	return f
}

// loadSource returns a path to read: the file or directory given, or
// stdin copied to a temporary file (archives are read out of order),
// decompressed when compressed.
func loadSource(input string, stdin io.Reader) (string, func(), error) {
	if input != "" {
		return input, func() {}, nil
	}
	f, err := os.CreateTemp("", "builder-load-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	plain, err := cache.Decompress(stdin, cache.ArchiveCodecs)
	if err == nil {
		_, err = io.Copy(f, plain)
		plain.Close()
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("reading the archive on stdin: %w", err)
	}
	return f.Name(), cleanup, nil
}

type archiveImage struct {
	img   v1.Image
	names []string
}

// archiveImages opens the images of a docker save archive, an OCI
// archive or an OCI layout directory; done removes what it unpacked,
// once the images are read.
func archiveImages(src string) (images []archiveImage, done func(), err error) {
	done = func() {}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, done, err
	}
	if fi.IsDir() {
		images, err = layoutImages(src)
		return images, done, err
	}
	opener := func() (io.ReadCloser, error) { return os.Open(src) }
	if m, err := tarball.LoadManifest(opener); err == nil && len(m) > 0 {
		images, err = dockerArchiveImages(opener, m)
		return images, done, err
	}
	// An OCI archive is a layout in a tar: unpacked, then read as one.
	dir, err := os.MkdirTemp("", "builder-load-")
	if err != nil {
		return nil, done, err
	}
	done = func() { os.RemoveAll(dir) }
	f, err := os.Open(src)
	if err != nil {
		return nil, done, err
	}
	defer f.Close()
	if err = snapshot.Extract(bufio.NewReader(f), dir, "/"); err == nil {
		images, err = layoutImages(dir)
	}
	if err != nil {
		return nil, done, fmt.Errorf("%s is neither a docker save archive nor an OCI archive or layout: %w", src, err)
	}
	return images, done, nil
}

func dockerArchiveImages(opener tarball.Opener, m tarball.Manifest) ([]archiveImage, error) {
	var out []archiveImage
	for _, d := range m {
		var tag *name.Tag
		if len(d.RepoTags) > 0 {
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return nil, fmt.Errorf("archive name %q: %w", d.RepoTags[0], err)
			}
			tag = &t
		} else if len(m) > 1 {
			return nil, errors.New("the archive holds several images, some without a name: load them from an OCI archive instead")
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, err
		}
		out = append(out, archiveImage{img: img, names: familiarNames(d.RepoTags)})
	}
	return out, nil
}

func layoutImages(dir string) ([]archiveImage, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, fmt.Errorf("no oci-layout file: %w", err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []archiveImage
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			continue // an index of platforms: not yet
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		out = append(out, archiveImage{img: img, names: familiarNames([]string{d.Annotations["org.opencontainers.image.ref.name"]})})
	}
	if len(out) == 0 {
		return nil, errors.New("the layout holds no image manifest")
	}
	return out, nil
}

// familiarNames keeps the names that are image references, in the
// store's familiar form.
func familiarNames(refs []string) []string {
	var out []string
	for _, r := range refs {
		if n, err := cache.NormalizeName(r); err == nil && r != "" {
			out = append(out, n)
		}
	}
	return out
}
