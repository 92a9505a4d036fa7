package executor

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/snapshot"
	"github.com/builderdev/builder/store"
)

// The outputs of an image's final filesystem, as docker build's -o.
const (
	OutputLocal = "local" // the files, written into the directory Dest
	OutputTar   = "tar"   // a tar archive of the files, at Dest or to Writer
)

// exportFS writes the filesystem the image's layers make, merged (what a
// container of the image starts with): the chain is mounted read-only on
// a private thread and written as one tar, which a local output unpacks
// into its directory. Owners, modes, times, links and xattrs are kept.
func exportFS(ctx context.Context, st *store.Store, rec cache.ImageRecord, o Output) error {
	chain, err := unpackedChain(ctx, st, rec)
	if err != nil {
		return err
	}
	write := func(w io.Writer) error { return writeMerged(ctx, st.Snapshots(), chain, w) }
	switch {
	case o.Type == OutputLocal:
		if err := os.MkdirAll(o.Dest, 0o755); err != nil {
			return fmt.Errorf("exporting to %s: %w", o.Dest, err)
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(write(pw)) }()
		err := snapshot.ExtractLimit(pr, o.Dest, "/", -1)
		pr.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("exporting to %s: %w", o.Dest, err)
		}
		return nil
	case o.Writer != nil:
		return write(o.Writer)
	}
	if err := fsutil.WriteAtomic(o.Dest, 0o644, write); err != nil {
		return fmt.Errorf("writing %s: %w", o.Dest, err)
	}
	return nil
}

// unpackedChain returns the snapshots of rec's layers, bottom first,
// unpacking the ones the store lacks.
func unpackedChain(ctx context.Context, st *store.Store, rec cache.ImageRecord) ([]snapshot.ID, error) {
	img, err := st.Cache().Image(rec.Manifest.Digest)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", rec.ID, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s lists %d layers and %d diff IDs", rec.ID, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	snaps := st.Snapshots()
	var chain []snapshot.ID
	for i, l := range m.Layers {
		id := snapshot.ID(cfg.RootFS.DiffIDs[i].Hex)
		chain = append(chain, id)
		if snaps.Exists(id) {
			continue
		}
		rc, err := st.Cache().OpenLayer(l)
		if err != nil {
			return nil, fmt.Errorf("opening layer %s: %w", l.Digest, err)
		}
		err = snaps.Unpack(ctx, id, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("unpacking layer %s: %w", l.Digest, err)
		}
	}
	return chain, nil
}

// writeMerged writes the merged view of chain to w as a tar.
func writeMerged(ctx context.Context, snaps *snapshot.Store, chain []snapshot.ID, w io.Writer) error {
	if len(chain) == 0 { // FROM scratch with no file: an empty archive
		return tar.NewWriter(w).Close()
	}
	view, release, err := snaps.View(ctx, chain)
	if err != nil {
		return err
	}
	defer release()
	work, err := os.MkdirTemp("", "builder-export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	return withRootfs(view, work, func(root string) error {
		return snapshot.WriteLayer(w, root, snapshot.WriteOptions{})
	})
}
