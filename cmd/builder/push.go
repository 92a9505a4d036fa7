package main

import (
	"context"
	"errors"

	"github.com/spf13/pflag"
)

var cmdPush = &command{
	Name:  "push",
	Args:  "IMAGE",
	Short: "Push an image to a registry (not implemented yet)",
	Long: `
Push is not implemented yet. Until it is, save the image and copy it with
skopeo.`,
	Example: `
builder save --format oci app:1.0 -o app.tar
skopeo copy oci-archive:app.tar docker://registry.example.com/app:1.0`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			return errors.New("push is not implemented yet; use 'builder save --format oci IMAGE -o FILE' and 'skopeo copy oci-archive:FILE docker://REF'")
		}
	},
}
