package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
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
	// OpenForCheck leaves dead sessions for Check to report; snapshot.Open
	// detaches stale mounts and only then removes dead sessions (a
	// session is never removed while something is mounted inside it),
	// and its Check reports both.
	store, err := cache.OpenForCheck(root)
	if err != nil {
		return fmt.Errorf("opening store %s: %w", root, err)
	}
	defer store.Close()
	snaps, err := snapshot.Open(root)
	if err != nil {
		return fmt.Errorf("opening snapshots in %s: %w", root, err)
	}
	defer snaps.Close()
	// A check shares the build lock, so that it runs beside builds but
	// never sees a prune half done; a repair holds it alone, so that
	// nothing a build has written and not yet tagged is judged.
	lock := store.BuildLock
	if repair {
		lock = store.ExclusiveLock
	}
	release, err := lock(ctx)
	if err != nil {
		return err
	}
	defer release()

	// Snapshots first: their repair detaches stale mounts, which must be
	// gone before the store's repair removes the sessions they are in.
	var lines []finding
	sf, err := snaps.Check(ctx, repair)
	for _, f := range sf {
		lines = append(lines, finding{f.Subject, f.Problem, f.Repaired})
	}
	if err != nil {
		printFindings(a, lines)
		return fmt.Errorf("checking snapshots: %w", err)
	}
	cf, err := store.Check(ctx, repair)
	for _, f := range cf {
		lines = append(lines, finding{f.Subject, f.Problem, f.Repaired})
	}
	printFindings(a, lines)
	if err != nil {
		return err
	}
	return summarize(a, root, lines, repair)
}

// finding is what cache and snapshot findings have in common.
type finding struct {
	subject, problem string
	repaired         bool
}

func printFindings(a *app, lines []finding) {
	for _, f := range lines {
		suffix := ""
		if f.repaired {
			suffix = " (removed)"
		}
		fmt.Fprintf(a.stdout, "%s: %s%s\n", f.subject, f.problem, suffix)
	}
}

// summarize writes the summary line and decides the exit status: the
// store is sound when every problem found has been removed.
func summarize(a *app, root string, lines []finding, repair bool) error {
	left := 0
	for _, f := range lines {
		if !f.repaired {
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
