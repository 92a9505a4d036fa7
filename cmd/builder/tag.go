package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
)

var cmdTag = &command{
	Name:  "tag",
	Args:  "SOURCE TARGET",
	Short: "Give an image another name",
	Long: `
Tag points the name TARGET at the image SOURCE (a name, an ID or a unique
ID prefix), replacing any image that had that name before.`,
	Example: `builder tag app:1.0 registry.example.com/app:1.0`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 2, "SOURCE and TARGET"); err != nil {
				return err
			}
			target, err := cache.NormalizeName(args[1])
			if err != nil {
				return usagef("invalid name %q: %v", args[1], err)
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
			if err := store.Tag(target, rec.Manifest); err != nil {
				return fmt.Errorf("tagging %s: %w", target, err)
			}
			return nil
		}
	},
}
