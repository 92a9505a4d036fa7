package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/store"
)

// TestHonestNumbers: what `du` calls reclaimable is what `prune --all`
// frees, and what prune reports is what the store shrank by, both as
// `du -s` measures the store. (Root: builds run containers.)
func TestHonestNumbers(t *testing.T) {
	testutil.RequireRoot(t)
	busybox := testutil.RequireTool(t, "busybox")
	duTool := testutil.RequireTool(t, "du")
	root := t.TempDir()
	env := testEnv("BUILDER_ROOT="+root, "CI=true")
	build := func(args ...string) {
		t.Helper()
		if code, _, stderr := runWith(env, append([]string{"build", "-q"}, args...)...); code != 0 {
			t.Fatalf("build %q: %s", args, stderr)
		}
	}
	a := busyboxContext(t, busybox, "RUN head -c 2000000 /dev/urandom > /a && for i in 1 2 3 4 5 6 7 8; do echo $i > /f$i; done\n")
	b := busyboxContext(t, busybox, "RUN head -c 3000000 /dev/urandom > /b\n")
	build("-t", "a", a)
	build("-t", "b", b)
	build("--no-cache", "-t", "a", a) // the first a's layers: entries only
	if code, _, stderr := runWith(env, "rmi", "b"); code != 0 {
		t.Fatal(stderr)
	}
	duS := func() int64 {
		t.Helper()
		out, err := exec.Command(duTool, "-s", "-B1", root).Output()
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	prune := func(args ...string) (reported string, shrank int64) {
		t.Helper()
		before := duS()
		code, stdout, stderr := runWith(env, append([]string{"prune"}, args...)...)
		if code != 0 {
			t.Fatalf("prune %q: %s", args, stderr)
		}
		_, reported, _ = strings.Cut(strings.TrimSpace(stdout), "Total reclaimed space: ")
		return reported, before - duS()
	}

	// A plain prune removes the blobs and snapshots nothing uses (the
	// removed b's, the first a's snapshots): it reports what the store
	// shrank by.
	reported, shrank := prune()
	if reported != humanSize(shrank) {
		t.Errorf("prune reported %s reclaimed; the store shrank by %s", reported, humanSize(shrank))
	}
	if shrank < 4_000_000 {
		t.Errorf("prune freed %s; the store held two layers of random data no tagged image needs (2 MB, 3 MB)", humanSize(shrank))
	}

	st, err := store.Open(root, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.Usage()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	// --all removes every entry and every snapshot blobs can rebuild;
	// the snapshots that hold a's layers stay (their only copy).
	reported, shrank = prune("--all")
	if reported != humanSize(shrank) {
		t.Errorf("prune --all reported %s reclaimed; the store shrank by %s", reported, humanSize(shrank))
	}
	// Emptied directories stay, and index.json is rewritten: a few blocks.
	if d := u.Reclaimable - shrank; d < -64<<10 || d > 64<<10 {
		t.Errorf("du said %d bytes reclaimable (%s); prune --all freed %d (%s)", u.Reclaimable, humanSize(u.Reclaimable), shrank, humanSize(shrank))
	}
}
