package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// tinyLayers makes n one-file layer dirs, each holding f/<i> and top=<i>,
// and returns them topmost first, as Mount.Lowers lists them.
func tinyLayers(t *testing.T, n int) []string {
	t.Helper()
	base := t.TempDir()
	lowers := make([]string, n)
	for i := range n {
		d := filepath.Join(base, strconv.Itoa(i))
		newTree(t, d).file("f/"+strconv.Itoa(i), "", 0o644).file("top", strconv.Itoa(i), 0o644)
		lowers[n-1-i] = d
	}
	return lowers
}

// inMount mounts m in a private namespace and runs fn on the merged root.
func inMount(t *testing.T, m Mount, fn func(root string)) error {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	return Private(func() error {
		if err := m.MountAt(mnt); err != nil {
			return err
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		fn(mnt)
		return nil
	})
}

func TestMountDepth(t *testing.T) {
	testutil.RequireRoot(t)
	all := tinyLayers(t, MaxLowers+1)
	stub := []MountPoint{{Path: "/proc", Dir: true}, {Path: "/etc/hosts"}}
	tests := []struct {
		layers   int
		stub     bool
		readOnly bool
		tooDeep  bool
	}{
		{layers: MaxLowers - 1, stub: true},
		{layers: MaxLowers},
		{layers: MaxLowers, readOnly: true},
		{layers: MaxLowers, stub: true, tooDeep: true},
		{layers: MaxLowers + 1, tooDeep: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d stub=%v ro=%v", tc.layers, tc.stub, tc.readOnly), func(t *testing.T) {
			m := Mount{Lowers: all[len(all)-tc.layers:]}
			dir := t.TempDir()
			if !tc.readOnly {
				m.Upper, m.Work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
				os.Mkdir(m.Upper, 0o755)
				os.Mkdir(m.Work, 0o755)
			}
			if tc.stub {
				m.Stub, m.MountPoints = filepath.Join(dir, "stub"), stub
			}
			err := inMount(t, m, func(root string) {
				top, _ := os.ReadFile(filepath.Join(root, "top"))
				if want := strconv.Itoa(tc.layers - 1); string(top) != want {
					t.Errorf("top = %q, want %q (the topmost layer wins)", top, want)
				}
				if ents, _ := os.ReadDir(filepath.Join(root, "f")); len(ents) != tc.layers {
					t.Errorf("merged f/ has %d entries, want %d", len(ents), tc.layers)
				}
				if tc.stub {
					for _, mp := range stub {
						if _, err := os.Stat(filepath.Join(root, mp.Path)); err != nil {
							t.Errorf("mount point %s: %v", mp.Path, err)
						}
					}
				}
			})
			if tc.tooDeep {
				if !errors.Is(err, ErrTooDeep) {
					t.Errorf("MountAt = %v, want ErrTooDeep", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("MountAt: %v", err)
			}
			if ents, _ := os.ReadDir(m.Upper); m.Upper != "" && len(ents) != 0 {
				t.Errorf("the upper holds %d entries after a mount that wrote nothing (stub leaked)", len(ents))
			}
		})
	}
}

// deepChain unpacks n layers into s: layer i holds f/<i> and top=<i>;
// layer 0 also holds a tree with every kind of entry, and a few layers
// delete and hide what earlier ones made.
func deepChain(t *testing.T, s *Store, n int) []ID {
	t.Helper()
	src := t.TempDir()
	rich := filepath.Join(src, "rich")
	plainTree(t, rich)
	ids := make([]ID, n)
	for i := range n {
		entries := []entry{reg("f/"+strconv.Itoa(i), ""), reg("top", strconv.Itoa(i))}
		switch i {
		case 5:
			entries = append(entries, reg("gone", "soon"))
		case 10:
			entries = append(entries, reg(".wh.gone", ""))
		case 100:
			entries = append(entries, reg("opq/old", "old"))
		case 200:
			entries = append(entries, dirEntry("opq/"), reg("opq/.wh..wh..opq", ""), reg("opq/new", "new"))
		case 300:
			entries = append(entries, reg("late", "l"))
		}
		data := makeTar(t, entries...)
		if i == 0 {
			newTree(t, rich).file("f/0", "", 0o644).file("top", "0", 0o644)
			data = layerOf(t, rich)
		}
		ids[i] = unpackT(t, s, data)
	}
	return ids
}

// plainTree is richTree without overlay's whiteouts and opaque dirs: a
// tree as a merged view shows it.
func plainTree(t *testing.T, root string) {
	richTree(t, root)
	tr := newTree(t, root)
	for _, p := range []string{"gone", "removed", "opq"} {
		tr.check(os.RemoveAll(tr.p(p)))
	}
	tr.times(t0)
}

func TestPrepareDeepChain(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := openStoreT(t, t.TempDir())
	ids := deepChain(t, s, 760)

	a, err := s.Prepare(ctx, ids[:600])
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	lowers := a.Mount.Lowers
	if len(lowers) != 600-flatChunk+1 {
		t.Fatalf("%d lowers for 600 layers, want %d", len(lowers), 600-flatChunk+1)
	}
	flat := filepath.Base(filepath.Dir(lowers[len(lowers)-1]))
	if !strings.HasPrefix(flat, flatPrefix) {
		t.Fatalf("bottom lower %s is not a merged snapshot", lowers[len(lowers)-1])
	}
	checkMerged(t, a.Mount, 600)

	// The merged tree keeps every kind of entry of layer 0.
	rich := filepath.Join(t.TempDir(), "rich")
	plainTree(t, rich)
	var got []string
	for _, l := range manifest(t, s.Dir(ID(flat))) {
		if !strings.HasPrefix(l, "f ") && !strings.HasPrefix(l, "f/") && !strings.HasPrefix(l, "top ") && !strings.HasPrefix(l, "opq") && !strings.HasPrefix(l, "late") {
			got = append(got, l)
		}
	}
	if d := diffLines(manifest(t, rich), got); d != "" {
		t.Errorf("merged snapshot lost metadata:\n%s", d)
	}

	// Shorter and longer chains, and views, reuse the merged bottom.
	before, _ := s.List()
	for _, n := range []int{500, 599, 600} {
		m, _, err := s.View(ctx, ids[:n])
		if err != nil {
			t.Fatal(err)
		}
		if n > MaxLowers && m.Lowers[len(m.Lowers)-1] != s.Dir(ID(flat)) {
			t.Errorf("View of %d layers did not reuse %s", n, flat)
		}
	}
	if after, _ := s.List(); len(after) != len(before) {
		t.Errorf("views made new snapshots: %d -> %d", len(before), len(after))
	}

	// 760 layers need 500 merged: made from the 250 merged before.
	b, err := s.Prepare(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Mount.Lowers) != 760-2*flatChunk+1 {
		t.Errorf("%d lowers for 760 layers, want %d", len(b.Mount.Lowers), 760-2*flatChunk+1)
	}
	checkMerged(t, b.Mount, 760)
	if after, _ := s.List(); len(after) != len(before)+1 {
		t.Errorf("760 layers made %d new snapshots, want 1", len(after)-len(before))
	}
}

// checkMerged mounts m (a chain of deepChain's n layers) and checks the
// merged view: top layer wins, every layer visible, deletions honoured.
func checkMerged(t *testing.T, m Mount, n int) {
	t.Helper()
	err := inMount(t, m, func(root string) {
		if top, _ := os.ReadFile(filepath.Join(root, "top")); string(top) != strconv.Itoa(n-1) {
			t.Errorf("top = %q, want %d", top, n-1)
		}
		if ents, _ := os.ReadDir(filepath.Join(root, "f")); len(ents) != n {
			t.Errorf("f/ has %d entries, want %d", len(ents), n)
		}
		if _, err := os.Lstat(filepath.Join(root, "gone")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("whited-out file visible: %v", err)
		}
		ents, _ := os.ReadDir(filepath.Join(root, "opq"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"new"}) {
			t.Errorf("opaque dir shows %v, want [new]", names)
		}
		if data, _ := os.ReadFile(filepath.Join(root, "bin/ping")); string(data) != "ELF pretend" {
			t.Errorf("bin/ping = %q", data)
		}
	})
	if err != nil {
		t.Fatalf("mounting the chain: %v", err)
	}
}

// TestMountLongPaths: layer paths of 256 bytes and more, beyond what
// fsconfig takes as a string, are passed as descriptors.
func TestMountLongPaths(t *testing.T) {
	testutil.RequireRoot(t)
	long := filepath.Join(t.TempDir(), strings.Repeat("l", 200), strings.Repeat("o", 100))
	lower := newTree(t, filepath.Join(long, "lower")).file("f", "lower", 0o644).root
	m := Mount{Lowers: []string{lower}, Upper: filepath.Join(long, "upper"), Work: filepath.Join(long, "work")}
	newTree(t, m.Upper)
	newTree(t, m.Work)
	err := inMount(t, m, func(root string) {
		if err := os.WriteFile(filepath.Join(root, "new"), []byte("upper"), 0o644); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatalf("mounting with %d-byte paths: %v", len(lower), err)
	}
	if data, err := os.ReadFile(filepath.Join(m.Upper, "new")); err != nil || string(data) != "upper" {
		t.Errorf("upper/new = %q, %v", data, err)
	}
}

// TestMountStubPoints: mount points are made inside the rootfs, through
// the image's symlinks as runc resolves a mount destination (an absolute
// resolv.conf link is followed inside the root, never to the host), a
// node of the wrong type is replaced in the stub only, and the upper and
// the image keep nothing of it.
func TestMountStubPoints(t *testing.T) {
	testutil.RequireRoot(t)
	sb := newSandbox(t)
	lower := newTree(t, filepath.Join(t.TempDir(), "lower")).
		dir("etc", 0o750).chown("etc", 1000, 1000).
		symlink("etc/resolv.conf", sb.canary+"/resolv.conf").
		symlink("etc/hosts", "../../../../../../"+sb.canary+"/sub/hosts").
		file("proc", "not a dir", 0o644)
	before := manifest(t, lower.root)
	dir := t.TempDir()
	m := Mount{
		Lowers: []string{lower.root}, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"),
		Stub: filepath.Join(dir, "stub"),
		MountPoints: []MountPoint{
			{Path: "/etc/resolv.conf"}, {Path: "/etc/hosts"}, {Path: "/proc", Dir: true}, {Path: "/dev/pts", Dir: true},
		},
	}
	newTree(t, m.Upper)
	newTree(t, m.Work)
	err := inMount(t, m, func(root string) {
		for _, c := range []struct {
			p    string
			want uint32
		}{
			{"etc/resolv.conf", unix.S_IFLNK}, {sb.canary + "/resolv.conf", unix.S_IFREG},
			{sb.canary + "/sub/hosts", unix.S_IFREG}, {"proc", unix.S_IFDIR}, {"dev/pts", unix.S_IFDIR},
		} {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, c.p), &st); err != nil || st.Mode&unix.S_IFMT != c.want {
				t.Errorf("%s: mode %o, %v; want type %o", c.p, st.Mode, err, c.want)
			}
		}
		checkRoot(t, filepath.Join(root, "etc"), 0o750, 1000)
	})
	if err != nil {
		t.Fatal(err)
	}
	sb.verify(t)
	if ents, _ := os.ReadDir(m.Upper); len(ents) != 0 {
		t.Errorf("upper holds %v after a mount that wrote nothing", ents)
	}
	if d := diffLines(before, manifest(t, lower.root)); d != "" {
		t.Errorf("the image changed:\n%s", d)
	}
}
