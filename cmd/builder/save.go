package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
)

var cmdSave = &command{
	Name:  "save",
	Args:  "[flags] IMAGE -o FILE",
	Short: "Write an image to an archive",
	Long: `
Save writes an image of the local store to a tar archive: by default one
that "docker load" and "podman load" read, or with --format oci an OCI
image layout in a tar (skopeo's oci-archive).`,
	Example: `
builder save app:1.0 -o app.tar
builder save --format oci app:1.0 -o app.oci.tar`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerSaveFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 1, "IMAGE"); err != nil {
				return err
			}
			o, err := f.options()
			if err != nil {
				return err
			}
			store, err := a.store()
			if err != nil {
				return err
			}
			defer store.Close()
			rec, err := store.Lookup(args[0])
			if err != nil {
				return err // it names the image
			}
			return exportImage(a, store, rec, string(o.format), o.output, rec.Name)
		}
	},
}

// exportImage writes a stored image as typ ("oci", "docker" or
// "oci-layout") to dest: a file, "-" for stdout, or a layout directory.
func exportImage(a *app, store *cache.Store, rec cache.ImageRecord, typ, dest, name string) error {
	img, err := store.Image(rec.Manifest.Digest)
	if err != nil {
		return fmt.Errorf("opening image %s: %w", rec.ID, err)
	}
	if typ == "oci-layout" {
		if err := cache.ExportLayout(dest, img, name); err != nil {
			return fmt.Errorf("exporting to %s: %w", dest, err)
		}
		return nil
	}
	return writeArchive(a, dest, func(w io.Writer) error {
		return cache.Export(w, img, name, cache.Format(typ))
	})
}

// writeArchive writes an archive to stdout, or to a file that appears
// only once it is complete and on disk: an interrupted save leaves
// nothing under dest, and neither does a crash just after it.
func writeArchive(a *app, dest string, write func(io.Writer) error) error {
	if dest == "-" {
		return write(a.stdout)
	}
	f, err := fsutil.CreatePending(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*", 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	defer f.Cleanup()
	if err := write(f); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if err := f.Commit(dest); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return nil
}
