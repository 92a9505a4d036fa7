package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
)

var cmdDiff = &command{
	Name:  "diff",
	Args:  "IMAGE [IMAGE2]",
	Short: "Show the files an image's last layer, or a second image, changes",
	Long: `
Diff lists what the last layer of IMAGE adds (A), changes (C) and deletes
(D), as "docker diff" lists a container's changes; with IMAGE2, what
IMAGE2 adds, changes and deletes compared with IMAGE. A file counts as
changed when its type, mode, owner, size, modification time or link
target differ, as docker compares them; a directory whose entries changed
is changed too. Paths are sorted.`,
	Example: `
builder diff app:1
builder diff app:1 app:2`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("diff takes IMAGE and at most one IMAGE2")
			}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			var changes []change
			if len(args) == 1 {
				changes, err = lastLayerChanges(ctx, st.Cache(), args[0])
			} else {
				changes, err = imageChanges(ctx, st.Cache(), args[0], args[1])
			}
			if err != nil {
				return err
			}
			for _, c := range changes {
				fmt.Fprintf(a.stdout, "%c %s\n", c.kind, c.path)
			}
			return nil
		}
	},
}

type change struct {
	kind byte // 'A', 'C' or 'D'
	path string
}

// fileInfo is what the comparison looks at, as docker's does.
type fileInfo struct {
	typ        byte
	mode       int64
	uid, gid   int
	size       int64
	mtime      time.Time
	linkTarget string
}

// fileTree is the filesystem some layers make: absolute path → file.
type fileTree map[string]fileInfo

func imageLayers(store *cache.Store, ref string) ([]v1.Layer, error) {
	rec, err := store.Lookup(ref)
	if err != nil {
		return nil, err // it names the image
	}
	img, err := store.Image(rec.Manifest.Digest)
	if err != nil {
		return nil, err
	}
	return img.Layers()
}

// lastLayerChanges is `diff IMAGE`: the last layer against the ones below.
func lastLayerChanges(ctx context.Context, store *cache.Store, ref string) ([]change, error) {
	layers, err := imageLayers(store, ref)
	if err != nil || len(layers) == 0 {
		return nil, err
	}
	below := fileTree{}
	for _, l := range layers[:len(layers)-1] {
		if err := applyLayerTree(ctx, below, l, nil); err != nil {
			return nil, err
		}
	}
	seen := map[string]byte{}
	after := fileTree{}
	for p, fi := range below {
		after[p] = fi
	}
	err = applyLayerTree(ctx, after, layers[len(layers)-1], func(p string, deleted bool) {
		_, existed := below[p]
		switch {
		case deleted && existed:
			seen[p] = 'D'
		case deleted:
		case existed:
			seen[p] = 'C'
		default:
			seen[p] = 'A'
		}
	})
	if err != nil {
		return nil, err
	}
	var out []change
	for p, k := range seen {
		out = append(out, change{k, p})
	}
	sortChanges(out)
	return out, nil
}

// imageChanges is `diff IMAGE IMAGE2`: the two filesystems compared.
func imageChanges(ctx context.Context, store *cache.Store, ref1, ref2 string) ([]change, error) {
	var trees [2]fileTree
	for i, ref := range []string{ref1, ref2} {
		layers, err := imageLayers(store, ref)
		if err != nil {
			return nil, err
		}
		trees[i] = fileTree{}
		for _, l := range layers {
			if err := applyLayerTree(ctx, trees[i], l, nil); err != nil {
				return nil, err
			}
		}
	}
	var out []change
	for p, b := range trees[1] {
		a, ok := trees[0][p]
		switch {
		case !ok:
			out = append(out, change{'A', p})
		case a != b:
			out = append(out, change{'C', p})
		}
	}
	for p := range trees[0] {
		if _, ok := trees[1][p]; !ok {
			out = append(out, change{'D', p})
		}
	}
	sortChanges(out)
	return out, nil
}

func sortChanges(cs []change) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].path < cs[j].path })
}

// applyLayerTree applies one layer's tar to t: entries set, whiteouts
// delete (a path and what is below it), an opaque marker empties its
// directory. touched, if set, is called with each path the layer sets or
// deletes.
func applyLayerTree(ctx context.Context, t fileTree, l v1.Layer, touched func(p string, deleted bool)) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("reading layer: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	// An opaque marker may come after entries of its own directory (names
	// sorting before ".wh."): it hides what was below, not those.
	set := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		p := path.Clean("/" + h.Name)
		dir, base := path.Split(p)
		dir = path.Clean(dir)
		switch {
		case base == ".wh..wh..opq":
			for _, q := range under(t, dir) {
				if set[q] {
					continue
				}
				delete(t, q)
				if touched != nil {
					touched(q, true)
				}
			}
		case strings.HasPrefix(base, ".wh."):
			// one D for a deleted directory, as docker diff shows it
			gone := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			for _, q := range under(t, gone) {
				delete(t, q)
			}
			delete(t, gone)
			if touched != nil {
				touched(gone, true)
			}
		case p == "/":
		default:
			if old, ok := t[p]; ok && old.typ == tar.TypeDir && h.Typeflag != tar.TypeDir {
				for _, q := range under(t, p) {
					delete(t, q)
				}
			}
			t[p] = fileInfo{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, size: h.Size,
				mtime: h.ModTime.UTC(), linkTarget: h.Linkname}
			set[p] = true
			if touched != nil {
				touched(p, false)
			}
		}
	}
}

// under lists the paths of t strictly below dir.
func under(t fileTree, dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var out []string
	for q := range t {
		if strings.HasPrefix(q, prefix) {
			out = append(out, q)
		}
	}
	return out
}
