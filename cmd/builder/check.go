package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/store"
)

var cmdCheck = &command{
	Name:  "check",
	Args:  "[--repair]",
	Short: "Verify the local store",
	Long: `
Check verifies the whole store: every blob against its digest; every tag
and image ID record names a complete image (manifest, config and every
layer present and sound); every build-cache entry's layer is there; every
unpacked snapshot matches the layer it was made from; no stale mount and
no leftover of a dead process. It prints one line per problem on stdout
and a summary on stderr. Blobs that nothing uses are not problems ("builder
prune" removes them).

--repair removes what is broken, and only that: damaged blobs and
snapshots, tags and records of incomplete images, cache entries whose
layer is gone, leftovers of dead processes. A complete image is never
removed; a removed blob is fetched or built again when next needed. Each
line then ends with "(removed)". Check waits for running builds to finish
before it repairs; without --repair it runs beside them.

Opening the store always detaches stale mounts and removes the temporary
directories of dead processes: check reports those as removed too.

Exit status: 0 if the store is sound now (nothing found, or everything
found removed), 1 if problems remain, 2 for a bad command line.`,
	Example: `
builder check
builder check --repair`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		f := registerCheckFlags(fs)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 0, ""); err != nil {
				return err
			}
			return runCheck(ctx, a, f.repair)
		}
	},
}

func runCheck(ctx context.Context, a *app, repair bool) error {
	root, err := a.env.storeRoot()
	if err != nil {
		return err
	}
	maxLayer, err := a.env.maxLayerSize()
	if err != nil {
		return err
	}
	// OpenForCheck leaves dead sessions for Check to report.
	st, err := store.OpenForCheck(root, store.Options{MaxLayerSize: maxLayer})
	if err != nil {
		return err
	}
	defer st.Close()
	found, err := st.Check(ctx, repair)
	printFindings(a, found)
	if err != nil {
		return err
	}
	return summarize(a, st.Root(), found, repair)
}

func printFindings(a *app, lines []store.Finding) {
	for _, f := range lines {
		suffix := ""
		if f.Repaired {
			suffix = " (removed)"
		}
		fmt.Fprintf(a.stdout, "%s: %s%s\n", f.Subject, f.Problem, suffix)
	}
}

// summarize writes the summary line and decides the exit status: the
// store is sound when every problem found has been removed.
func summarize(a *app, root string, lines []store.Finding, repair bool) error {
	left := 0
	for _, f := range lines {
		if !f.Repaired {
			left++
		}
	}
	switch {
	case len(lines) == 0:
		fmt.Fprintf(a.stderr, "builder: store %s: no problems found\n", root)
		return nil
	case left == 0:
		fmt.Fprintf(a.stderr, "builder: store %s: %s found, all removed\n", root, problems(len(lines)))
		return nil
	case repair:
		fmt.Fprintf(a.stderr, "builder: store %s: %s found, %d removed, %d cannot be repaired by check\n", root, problems(len(lines)), len(lines)-left, left)
	default:
		fmt.Fprintf(a.stderr, "builder: store %s: %s found (builder check --repair removes what is broken)\n", root, problems(len(lines)))
	}
	return errReported
}

func problems(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}
