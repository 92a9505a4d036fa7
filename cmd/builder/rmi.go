package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
)

var cmdRmi = &command{
	Name:  "rmi",
	Args:  "IMAGE...",
	Short: "Remove image names",
	Long: `
Rmi removes names from the local store. Given an ID (or a unique ID
prefix), it removes every name of that image. The blobs stay until
"builder prune" finds nothing else uses them.`,
	Example: `
builder rmi app:1.0 app:latest
builder rmi -f $(builder images -q app)`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		registerRmiFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) == 0 {
				return usagef("missing IMAGE")
			}
			st, err := a.open()
			if err != nil {
				return err
			}
			defer st.Close()
			store := st.Cache()
			failed := false
			for _, arg := range args {
				names, err := removeNames(store, arg)
				for _, n := range names {
					fmt.Fprintf(a.stdout, "Untagged: %s\n", n)
				}
				if err != nil {
					printError(a.stderr, err)
					failed = true
				}
			}
			if failed {
				return errReported
			}
			return nil
		}
	},
}

// removeNames removes arg if it is a name, or else every name of the
// image arg identifies, and returns the names removed.
func removeNames(store *cache.Store, arg string) ([]string, error) {
	if name, err := cache.NormalizeName(arg); err == nil {
		err := store.Untag(name)
		if err == nil {
			return []string{name}, nil
		}
		if !errors.Is(err, cache.ErrNotFound) {
			return nil, fmt.Errorf("removing %s: %w", name, err)
		}
	}
	rec, err := store.Lookup(arg)
	if err != nil {
		return nil, err // it names the image
	}
	all, err := store.Images()
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	var removed []string
	for _, r := range all {
		if r.ID != rec.ID {
			continue
		}
		if err := store.Untag(r.Name); err != nil {
			return removed, fmt.Errorf("removing %s: %w", r.Name, err)
		}
		removed = append(removed, r.Name)
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("image %s has no names to remove ('builder prune' removes unused data)", arg)
	}
	return removed, nil
}
