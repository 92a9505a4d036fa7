package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// layerSpec is one layer of a squash case: a tar, or changes made in a
// mounted overlay of the chain below (as a RUN step makes them), whose
// upper becomes the layer.
type layerSpec struct {
	tar []entry
	op  func(t *testing.T, root string)
}

func tarLayer(entries ...entry) layerSpec { return layerSpec{tar: entries} }

func opLayer(op func(t *testing.T, root string)) layerSpec { return layerSpec{op: op} }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func withXattr(e entry, key, value string) entry {
	e.hdr.PAXRecords = map[string]string{paxXattrPrefix + key: value}
	return e
}

func owned(e entry, uid, gid int, mode int64) entry {
	e.hdr.Uid, e.hdr.Gid, e.hdr.Mode = uid, gid, mode
	return e
}

// addLayer makes spec a committed snapshot on top of chain.
func addLayer(t *testing.T, s *Store, chain []ID, spec layerSpec) ID {
	t.Helper()
	if spec.tar != nil {
		return unpackT(t, s, makeTar(t, spec.tar...))
	}
	a, err := s.Prepare(context.Background(), chain)
	must(t, err)
	defer a.Close()
	must(t, inMount(t, a.Mount, func(root string) { spec.op(t, root) }))
	var buf bytes.Buffer
	must(t, WriteLayer(&buf, a.Upper(), WriteOptions{}))
	id := layerIDOf(buf.Bytes())
	must(t, a.CommitLayer(id, WriteOptions{}))
	return id
}

// viewManifest is the manifest of the merged view of chain.
func viewManifest(t *testing.T, s *Store, chain []ID) []string {
	t.Helper()
	m, _, err := s.View(context.Background(), chain)
	must(t, err)
	var lines []string
	must(t, inMount(t, m, func(root string) { lines = manifest(t, root) }))
	return lines
}

func TestWriteMerged(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name  string
		lower []layerSpec
		run   []layerSpec
		// inTar and notInTar are tar entry names the merged layer must
		// (not) hold.
		inTar, notInTar []string
	}{{
		name:  "whiteout then recreate",
		lower: []layerSpec{tarLayer(reg("f", "old"), dirEntry("d/"), reg("d/a", "a"), reg("d/b", "b"))},
		run: []layerSpec{
			tarLayer(reg(".wh.f", ""), reg(".wh.d", "")),
			tarLayer(reg("f", "new"), dirEntry("d/"), reg("d/c", "c")),
		},
		inTar:    []string{"d/.wh.a", "d/.wh.b", "d/c", "f"},
		notInTar: []string{".wh.f", ".wh.d"},
	}, {
		name:  "dir to file to dir",
		lower: []layerSpec{tarLayer(dirEntry("x/"), reg("x/1", "1"), reg("x/2", "2"))},
		run: []layerSpec{
			opLayer(func(t *testing.T, root string) {
				must(t, os.RemoveAll(filepath.Join(root, "x")))
				must(t, os.WriteFile(filepath.Join(root, "x"), []byte("file"), 0o640))
			}),
			opLayer(func(t *testing.T, root string) {
				must(t, os.Remove(filepath.Join(root, "x")))
				must(t, os.Mkdir(filepath.Join(root, "x"), 0o711))
				must(t, os.WriteFile(filepath.Join(root, "x/3"), []byte("3"), 0o644))
			}),
		},
		inTar: []string{"x/.wh.1", "x/.wh.2", "x/3"},
	}, {
		name:  "file to dir to file",
		lower: []layerSpec{tarLayer(reg("y", "file"))},
		run: []layerSpec{
			tarLayer(dirEntry("y/"), reg("y/in", "in")),
			tarLayer(reg("y", "again")),
		},
		notInTar: []string{"y/in"},
	}, {
		name:  "opaque dir",
		lower: []layerSpec{tarLayer(dirEntry("o/"), reg("o/a", "a"), dirEntry("o/sub/"), reg("o/sub/deep", "d"))},
		run: []layerSpec{
			tarLayer(dirEntry("o/"), reg("o/.wh..wh..opq", ""), reg("o/n", "n")),
			tarLayer(reg("unrelated", "u")),
		},
		inTar: []string{"o/.wh.a", "o/.wh.sub", "o/n"},
	}, {
		name:  "opaque dir made by overlay",
		lower: []layerSpec{tarLayer(dirEntry("o/"), reg("o/a", "a"))},
		run: []layerSpec{opLayer(func(t *testing.T, root string) {
			must(t, os.RemoveAll(filepath.Join(root, "o")))
			must(t, os.Mkdir(filepath.Join(root, "o"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "o/a"), []byte("new a"), 0o600))
		})},
	}, {
		name:  "hardlink to a file of a lower layer",
		lower: []layerSpec{tarLayer(owned(reg("h", "shared data"), 12, 34, 0o4755))},
		run: []layerSpec{
			opLayer(func(t *testing.T, root string) {
				must(t, os.Link(filepath.Join(root, "h"), filepath.Join(root, "h2")))
			}),
			tarLayer(reg("later", "l")),
			opLayer(func(t *testing.T, root string) {
				must(t, os.Link(filepath.Join(root, "later"), filepath.Join(root, "later2")))
			}),
		},
		inTar: []string{"h", "h2", "later", "later2"},
	}, {
		name:  "hardlink broken by a later change",
		lower: []layerSpec{tarLayer(reg("a", "x"), linkEntry("b", "a"))},
		run: []layerSpec{opLayer(func(t *testing.T, root string) {
			must(t, os.Chmod(filepath.Join(root, "a"), 0o600))
		})},
	}, {
		name:  "xattrs owners modes",
		lower: []layerSpec{tarLayer(withXattr(reg("x", "x"), "user.k", "1"), dirEntry("xd/"))},
		run: []layerSpec{
			tarLayer(withXattr(reg("x", "x2"), "user.k", "2"), withXattr(reg("ping", "elf"), "security.capability", capNetRaw)),
			tarLayer(withXattr(owned(dirEntry("xd/"), 5, 6, 0o1777), "user.dir", "yes"), owned(reg("own", "o"), 1000, 1000, 0o2751)),
		},
	}, {
		name:  "deleted stays deleted",
		lower: []layerSpec{tarLayer(reg("g", "g"), dirEntry("p/"), dirEntry("p/q/"), reg("p/q/r", "r")), tarLayer(reg("p/q/s", "s"))},
		run: []layerSpec{
			tarLayer(reg(".wh.g", ""), reg("p/q/.wh.r", "")),
			tarLayer(reg("k", "k")),
			tarLayer(reg("p/.wh.q", "")),
		},
		inTar:    []string{".wh.g", "p/.wh.q"},
		notInTar: []string{"p/q/.wh.r"},
	}, {
		name: "scratch base",
		run: []layerSpec{
			tarLayer(reg("a", "a"), reg("b", "b")),
			tarLayer(reg(".wh.a", "")),
		},
		inTar:    []string{"b"},
		notInTar: []string{"a", ".wh.a"},
	}, {
		name:  "lower symlink replaced by a dir",
		lower: []layerSpec{tarLayer(symlinkEntry("lib", "/etc"))},
		run:   []layerSpec{tarLayer(dirEntry("lib/"), reg("lib/x", "x"))},
		// /etc/passwd is the host's, never the image's.
		inTar:    []string{"lib/x"},
		notInTar: []string{"lib/.wh.passwd"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkMerge(t, tc.lower, tc.run, tc.inTar, tc.notInTar) })
	}
}

// checkMerge makes the layers, merges run over lower, and checks that
// lower plus the merged layer looks like lower plus run, that the merged
// tar holds inTar and not notInTar, and that merging twice gives the
// same bytes.
func checkMerge(t *testing.T, lowerSpecs, runSpecs []layerSpec, inTar, notInTar []string) {
	t.Helper()
	ctx := context.Background()
	s := openStoreT(t, t.TempDir())
	var lower, run []ID
	for _, l := range lowerSpecs {
		lower = append(lower, addLayer(t, s, lower, l))
	}
	for _, l := range runSpecs {
		run = append(run, addLayer(t, s, append(lower, run...), l))
	}
	var merged bytes.Buffer
	if err := s.WriteMerged(ctx, &merged, lower, run, WriteOptions{}); err != nil {
		t.Fatalf("WriteMerged: %v", err)
	}
	var again bytes.Buffer
	must(t, s.WriteMerged(ctx, &again, lower, run, WriteOptions{}))
	if !bytes.Equal(merged.Bytes(), again.Bytes()) {
		t.Errorf("two merges of the same layers differ")
	}
	id, err := s.Import(ctx, bytes.NewReader(merged.Bytes()))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if sum := sha256.Sum256(merged.Bytes()); string(id) != hex.EncodeToString(sum[:]) {
		t.Errorf("Import named the snapshot %s, not its diff ID", id)
	}
	want := viewManifest(t, s, append(lower, run...))
	got := viewManifest(t, s, append(lower, id))
	entries := tarEntries(t, merged.Bytes())
	if d := diffLines(want, got); d != "" {
		t.Errorf("lower + merged layer differs from lower + run:\n%s\nmerged layer:\n%s", d, strings.Join(entries, "\n"))
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[strings.TrimSuffix(strings.Fields(e)[0], "/")] = true
	}
	for _, n := range inTar {
		if !names[n] {
			t.Errorf("merged layer lacks %s:\n%s", n, strings.Join(entries, "\n"))
		}
	}
	for _, n := range notInTar {
		if names[n] {
			t.Errorf("merged layer holds %s:\n%s", n, strings.Join(entries, "\n"))
		}
	}
}

// TestWriteMergedLinkKinds checks the tar itself: a link made in the run
// to a file of the lower chain comes out as a tar hardlink, and two files
// of different layers that share an inode (as COPY's reuse of unchanged
// files makes them) come out as two files.
func TestWriteMergedLinkKinds(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := openStoreT(t, t.TempDir())
	base := addLayer(t, s, nil, tarLayer(reg("h", "data")))
	r1 := addLayer(t, s, []ID{base}, opLayer(func(t *testing.T, root string) {
		must(t, os.Link(filepath.Join(root, "h"), filepath.Join(root, "h2")))
	}))
	r2 := addLayer(t, s, []ID{base, r1}, tarLayer(reg("p", "same")))
	r3 := addLayer(t, s, []ID{base, r1, r2}, tarLayer(reg("q", "same")))
	// What COPY does: q becomes a link of an equal file of another snapshot.
	q := filepath.Join(s.Dir(r3), "q")
	must(t, os.Remove(q))
	must(t, os.Link(filepath.Join(s.Dir(r2), "p"), q))

	var merged bytes.Buffer
	must(t, s.WriteMerged(ctx, &merged, []ID{base}, []ID{r1, r2, r3}, WriteOptions{}))
	tr := tar.NewReader(&merged)
	kinds := map[string]byte{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		kinds[h.Name] = h.Typeflag
	}
	for name, want := range map[string]byte{"h": tar.TypeReg, "h2": tar.TypeLink, "p": tar.TypeReg, "q": tar.TypeReg} {
		if kinds[name] != want {
			t.Errorf("%s: tar type %q, want %q (all: %q)", name, kinds[name], want, kinds)
		}
	}
	var st unix.Stat_t
	must(t, unix.Stat(q, &st))
	if st.Nlink != 2 {
		t.Fatalf("setup: q has %d links, want 2", st.Nlink)
	}
}
