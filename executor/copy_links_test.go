package executor_test

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
)

// TestCopyKeepsHardlinks: files that are hardlinks of each other in the
// context, or in a stage COPY --from reads, stay hardlinks in the image,
// as with docker build; a link to a file outside the selection (here an
// ignored one) does not matter; and turning a link into a copy with the
// same content changes the COPY's cache key.
func TestCopyKeepsHardlinks(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"a.txt": "same\n", "d.txt": "d\n", "lone.txt": "lone\n", ".dockerignore": "ignored.txt\n"})
	for _, l := range [][2]string{{"a.txt", "b.txt"}, {"a.txt", "dir/c.txt"}, {"d.txt", "ignored.txt"}} {
		os.MkdirAll(filepath.Join(ctxDir, filepath.Dir(l[1])), 0o755)
		if err := os.Link(filepath.Join(ctxDir, l[0]), filepath.Join(ctxDir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	const df = `FROM busybox:test AS gen
RUN mkdir /x && echo f > /x/f && ln /x/f /x/g
FROM busybox:test
COPY . /app/
COPY --from=gen /x /y
RUN test "$(stat -c %i /app/a.txt)" = "$(stat -c %i /app/dir/c.txt)"
`
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := unpack(t, e, umoci, res)
	groups := inodeGroups(t, rootfs, "app/a.txt", "app/b.txt", "app/dir/c.txt", "app/d.txt", "app/lone.txt", "y/f", "y/g")
	want := [][]string{{"app/a.txt", "app/b.txt", "app/dir/c.txt"}, {"app/d.txt"}, {"app/lone.txt"}, {"y/f", "y/g"}}
	if !slices.EqualFunc(groups, want, slices.Equal) {
		t.Errorf("files sharing an inode: %q, want %q", groups, want)
	}

	// The same content, no longer linked: the COPY runs again, and b.txt
	// is a file of its own, in the RUN and in the layer.
	os.Remove(filepath.Join(ctxDir, "b.txt"))
	writeFiles(t, ctxDir, map[string]string{"b.txt": "same\n"})
	// As `cp -p` would: the same mtime too, so only the link differs, and
	// reusing the previous result must not link b.txt back to a.txt.
	fi, err := os.Stat(filepath.Join(ctxDir, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(ctxDir, "b.txt"), fi.ModTime(), fi.ModTime())
	var events []executor.Event
	res, err = e.build(t, ctxDir, df+"RUN test $(stat -c %i /app/b.txt) != $(stat -c %i /app/a.txt)\n", &buildOpts{events: &events})
	if err != nil {
		t.Fatal(err)
	}
	steps := ran(events)
	rootfs = unpack(t, e, umoci, res)
	if g := inodeGroups(t, rootfs, "app/a.txt", "app/b.txt", "app/dir/c.txt"); !slices.EqualFunc(g, [][]string{{"app/a.txt", "app/dir/c.txt"}, {"app/b.txt"}}, slices.Equal) {
		t.Errorf("after replacing a link by a copy, files sharing an inode: %q", g)
	}
	if len(steps) != 4 || steps[0] != "COPY . /app/" {
		t.Errorf("after replacing a link by a copy, ran %q, want the COPY and the three steps after it", steps)
	}
}

// inodeGroups groups the paths under root that share an inode, in the
// order given.
func inodeGroups(t *testing.T, root string, paths ...string) [][]string {
	t.Helper()
	var groups [][]string
	index := map[uint64]int{}
	for _, p := range paths {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if i, ok := index[ino]; ok {
			groups[i] = append(groups[i], p)
			continue
		}
		index[ino] = len(groups)
		groups = append(groups, []string{p})
	}
	return groups
}
