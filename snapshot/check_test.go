package snapshot

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/builderdev/builder/internal/testutil"
)

// checkStore is a store holding one snapshot of each origin: an unpacked
// layer, a layer committed with SOURCE_DATE_EPOCH, an upper committed
// without options, and a merged chain bottom.
type checkStore struct {
	s                              *Store
	root                           string
	unpacked, layer, plain, merged ID
}

func newCheckStore(t *testing.T) *checkStore {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	c := &checkStore{s: openStoreT(t, root), root: root}
	c.unpacked = unpackT(t, c.s, makeTar(t, reg("etc/motd", "hello"), dirEntry("d/"), reg("d/f", "f")))
	epoch := time.Unix(1700000000, 0)
	for _, opts := range []*WriteOptions{{SourceDateEpoch: &epoch}, nil} {
		a, err := c.s.Prepare(ctx, []ID{c.unpacked})
		if err != nil {
			t.Fatal(err)
		}
		newTree(t, a.Upper()).file("new", "new", 0o644).whiteout("etc/motd")
		if opts == nil {
			c.plain = "plain-upper"
			err = a.Commit(c.plain)
		} else {
			c.layer = layerIDOf(layerOfOpts(t, a.Upper(), *opts))
			err = a.CommitLayer(c.layer, *opts)
		}
		a.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if c.merged, err = c.s.flatten(ctx, []ID{c.unpacked, c.layer}); err != nil {
		t.Fatal(err)
	}
	return c
}

func layerOfOpts(t *testing.T, dir string, opts WriteOptions) []byte {
	t.Helper()
	var b strings.Builder
	if err := WriteLayer(&b, dir, opts); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}

func (c *checkStore) path(id ID, rel string) string {
	return filepath.Join(c.root, "snapshots", string(id), rel)
}

// editMarker rewrites the marker of id.
func (c *checkStore) editMarker(t *testing.T, id ID, edit func(m *marker)) {
	t.Helper()
	m, err := readMarker(c.s.idDir(id))
	if err != nil {
		t.Fatal(err)
	}
	edit(&m)
	data, _ := json.Marshal(m)
	if err := os.WriteFile(c.path(id, markerName), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckCleanStore(t *testing.T) {
	testutil.RequireRoot(t)
	c := newCheckStore(t)
	for _, id := range []ID{c.unpacked, c.layer, c.plain, c.merged} {
		m, err := readMarker(c.s.idDir(id))
		if err != nil || m.ID != id {
			t.Errorf("marker of %s: %+v, %v", id, m, err)
		}
		if (m.Tree == nil) != (id == c.plain) {
			t.Errorf("marker of %s: tree digest %v; want one unless committed without options", id, m.Tree)
		}
	}
	if findings, err := c.s.Check(context.Background(), false); err != nil || len(findings) != 0 {
		t.Errorf("Check of a sound store = %v, %v; want no findings", findings, err)
	}
}

func TestCheckFindings(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, c *checkStore) (subject string)
		problem string
		gone    func(c *checkStore) ID // the snapshot repair removes
	}{
		{"no marker (older version)", func(t *testing.T, c *checkStore) string {
			os.Remove(c.path(c.unpacked, markerName))
			return "snapshots/" + string(c.unpacked)
		}, "no marker", func(c *checkStore) ID { return c.unpacked }},
		{"unreadable marker", func(t *testing.T, c *checkStore) string {
			os.WriteFile(c.path(c.layer, markerName), []byte("{"), 0o644)
			return "snapshots/" + string(c.layer)
		}, "unreadable marker", func(c *checkStore) ID { return c.layer }},
		{"marker of another version", func(t *testing.T, c *checkStore) string {
			os.WriteFile(c.path(c.layer, markerName), []byte(`{"version":99}`), 0o644)
			return "snapshots/" + string(c.layer)
		}, "marker version 99", func(c *checkStore) ID { return c.layer }},
		{"marker names another snapshot", func(t *testing.T, c *checkStore) string {
			c.editMarker(t, c.unpacked, func(m *marker) { m.ID = c.layer })
			return "snapshots/" + string(c.unpacked)
		}, "the marker names snapshot", func(c *checkStore) ID { return c.unpacked }},
		{"marker's diff ID is not the name", func(t *testing.T, c *checkStore) string {
			c.editMarker(t, c.unpacked, func(m *marker) { m.DiffID = "sha256:" + string(c.layer) })
			return "snapshots/" + string(c.unpacked)
		}, "is not the snapshot's name", func(c *checkStore) ID { return c.unpacked }},
		{"merged chain is not the name", func(t *testing.T, c *checkStore) string {
			c.editMarker(t, c.merged, func(m *marker) { m.Chain = m.Chain[:1] })
			return "snapshots/" + string(c.merged)
		}, "chain of layers", func(c *checkStore) ID { return c.merged }},
		{"unpacked content changed", func(t *testing.T, c *checkStore) string {
			os.WriteFile(c.path(c.unpacked, "fs/d/f"), []byte("truncated"), 0o644)
			return "snapshots/" + string(c.unpacked)
		}, "content changed", func(c *checkStore) ID { return c.unpacked }},
		{"committed layer changed", func(t *testing.T, c *checkStore) string {
			os.Chmod(c.path(c.layer, "fs/new"), 0o600)
			return "snapshots/" + string(c.layer)
		}, "content changed", func(c *checkStore) ID { return c.layer }},
		{"merged content changed", func(t *testing.T, c *checkStore) string {
			os.Remove(c.path(c.merged, "fs/d/f"))
			return "snapshots/" + string(c.merged)
		}, "content changed", func(c *checkStore) ID { return c.merged }},
		{"stray entry in a snapshot", func(t *testing.T, c *checkStore) string {
			os.WriteFile(c.path(c.plain, "extra"), nil, 0o644)
			return "snapshots/" + string(c.plain)
		}, `stray entry "extra"`, func(c *checkStore) ID { return c.plain }},
		{"incomplete snapshot", func(t *testing.T, c *checkStore) string {
			os.RemoveAll(c.path(c.plain, "fs"))
			return "snapshots/" + string(c.plain)
		}, "no fs directory", func(c *checkStore) ID { return c.plain }},
		{"stray file in snapshots", func(t *testing.T, c *checkStore) string {
			os.WriteFile(filepath.Join(c.root, "snapshots", "junk"), nil, 0o644)
			return "snapshots/junk"
		}, "not a snapshot", nil},
		{"stray hidden directory in snapshots", func(t *testing.T, c *checkStore) string {
			os.MkdirAll(filepath.Join(c.root, "snapshots", ".old", "x"), 0o755)
			return "snapshots/.old"
		}, "not a snapshot", nil},
		{"the empty lower holds a file", func(t *testing.T, c *checkStore) string {
			os.WriteFile(filepath.Join(c.root, "snapshots", emptyDir, "planted"), nil, 0o644)
			return "snapshots/" + emptyDir
		}, "holds 1 entries", nil},
		{"the empty lower's mode", func(t *testing.T, c *checkStore) string {
			os.Chmod(filepath.Join(c.root, "snapshots", emptyDir), 0o777)
			return "snapshots/" + emptyDir
		}, "not a 0755 root directory", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := newCheckStore(t)
			subject := tc.damage(t, c)
			want := []Finding{{Subject: subject}}
			findings, err := c.s.Check(ctx, false)
			if err != nil || len(findings) != 1 || findings[0].Subject != subject ||
				!strings.Contains(findings[0].Problem, tc.problem) || findings[0].Repaired {
				t.Fatalf("Check = %+v, %v; want %v with a problem containing %q", findings, err, want, tc.problem)
			}
			t.Logf("%s: %s", findings[0].Subject, findings[0].Problem)
			findings, err = c.s.Check(ctx, true)
			if err != nil || len(findings) != 1 || !findings[0].Repaired {
				t.Fatalf("Check with repair = %+v, %v; want the finding repaired", findings, err)
			}
			if findings, err := c.s.Check(ctx, false); err != nil || len(findings) != 0 {
				t.Errorf("Check after repair = %+v, %v; want no findings", findings, err)
			}
			ids, _ := c.s.List()
			for _, id := range []ID{c.unpacked, c.layer, c.plain, c.merged} {
				gone := tc.gone != nil && tc.gone(c) == id
				if slices.Contains(ids, id) == gone {
					t.Errorf("after repair, snapshot %s present = %v, want %v", id, !gone, !gone)
				}
			}
		})
	}
}

// TestCheckStaleMountsAndSessions: what Open cleaned up is reported as
// repaired; a mount that appears later is reported, and removed with
// repair.
func TestCheckStaleMountsAndSessions(t *testing.T) {
	testutil.RequireRoot(t)
	runtime.LockOSThread() // the host namespace, not a Private thread's
	defer runtime.UnlockOSThread()
	ctx := context.Background()
	root := t.TempDir()
	hostMount(t, filepath.Join(root, "tmp", "s-dead", "merged"))
	s := openStoreT(t, root)
	findings, err := s.Check(ctx, false)
	if err != nil || len(findings) != 2 || !findings[0].Repaired || !strings.Contains(findings[0].Problem, "stale mount, found when the store was opened") ||
		!findings[1].Repaired || !strings.Contains(findings[1].Problem, "1 temporary directories of dead processes, found when the store was opened") {
		t.Fatalf("first Check = %+v, %v; want the mount and the session Open removed", findings, err)
	}
	if findings, err := s.Check(ctx, false); err != nil || len(findings) != 0 {
		t.Errorf("second Check = %+v, %v; want Open's work reported once", findings, err)
	}

	late := filepath.Join(root, "tmp", "late")
	hostMount(t, late)
	findings, err = s.Check(ctx, false)
	if err != nil || len(findings) != 1 || findings[0].Subject != late || findings[0].Repaired {
		t.Fatalf("Check = %+v, %v; want the stale mount %s", findings, err, late)
	}
	if got := mountsUnder(t, root); len(got) != 1 {
		t.Errorf("Check without repair unmounted: %v", got)
	}
	findings, err = s.Check(ctx, true)
	if err != nil || len(findings) != 1 || !findings[0].Repaired {
		t.Fatalf("Check with repair = %+v, %v", findings, err)
	}
	if got := mountsUnder(t, root); len(got) != 0 {
		t.Errorf("mounts left after repair: %v", got)
	}
}
