package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/registry"
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
			client := registry.New(store, registry.Options{Insecure: env.insecureRegistries(nil)})
			// Under the build lock: saving may fetch layers and compress
			// held ones into the store, which a prune must not see half
			// done.
			return st.Build(ctx, func() error {
				if err := executor.FetchMissing(ctx, store, rec, client.FetchLayer); err != nil {
					return err
				}
				return exportImage(ctx, a, store, rec, string(o.format), o.output, rec.Name)
			})
		}
	},
}

// exportImage writes a stored image as typ ("oci", "docker" or
// "oci-layout") to dest: a file, "-" for stdout, or a layout directory.
func exportImage(ctx context.Context, a *app, store *cache.Store, rec cache.ImageRecord, typ, dest, name string) error {
	o := executor.Output{Type: typ, Dest: dest, Name: name}
	if dest == "-" {
		o.Writer = a.stdout
	}
	return executor.Export(ctx, store, rec, o)
}
