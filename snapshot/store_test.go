package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

func openStoreT(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func layerOf(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteLayer(&buf, dir, WriteOptions{}); err != nil {
		t.Fatalf("WriteLayer(%s): %v", dir, err)
	}
	return buf.Bytes()
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) {
	return 0, errors.New("read although the snapshot exists")
}

func TestUnpackConcurrent(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	richTree(t, src)
	data := layerOf(t, src)
	id := layerIDOf(data)
	root := t.TempDir()
	stores := []*Store{openStoreT(t, root), openStoreT(t, root)}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- stores[i%2].Unpack(context.Background(), id, bytes.NewReader(data))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Unpack: %v", err)
		}
	}
	if d := diffLines(manifest(t, src), manifest(t, stores[0].Dir(id))); d != "" {
		t.Errorf("unpacked snapshot differs from the source:\n%s", d)
	}
	if err := stores[1].Unpack(context.Background(), id, failReader{}); err != nil {
		t.Errorf("Unpack of an existing id read its input: %v", err)
	}
	if ids, err := stores[1].List(); err != nil || !slices.Equal(ids, []ID{id}) {
		t.Errorf("List = %v, %v; want [%s]", ids, err, id)
	}
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("ROOT/tmp not empty after Close: %v", ents)
	}
}

func TestUnpackBadLayer(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	s := openStoreT(t, root)
	bad := makeTar(t, reg("ok", "fine"), reg("../escape", "x"))
	if err := s.Unpack(context.Background(), layerIDOf(bad), bytes.NewReader(bad)); err == nil {
		t.Fatal("Unpack of a hostile layer succeeded")
	}
	if s.Exists(layerIDOf(bad)) {
		t.Error("a failed Unpack left a snapshot")
	}
	for _, id := range []ID{"", ".", "..", "../x", "a/b", ".empty", "base", ID(strings.Repeat("A", 64)), flatID([]ID{"x"})} {
		if err := s.Unpack(context.Background(), id, bytes.NewReader(makeTar(t))); err == nil {
			t.Errorf("Unpack(%q) accepted an invalid id", id)
		}
	}
}

func TestActiveLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := openStoreT(t, t.TempDir())

	a, err := s.Prepare(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(s.snaps, emptyDir)}; !slices.Equal(a.Mount.Lowers, want) {
		t.Errorf("scratch lowers = %v, want %v", a.Mount.Lowers, want)
	}
	if a.Mount.Stub == "" || a.Mount.Work == "" || a.Mount.ReadOnly() {
		t.Errorf("active mount lacks stub, work or upper: %+v", a.Mount)
	}
	checkRoot(t, a.Upper(), 0o755, 0)
	// What the step leaves as the upper root becomes the next chain root.
	big := strings.Repeat("x", 1<<20)
	newTree(t, a.Upper()).file("big", big, 0o644).link("big2", "big").link("big3", "big").chown(".", 123, 45).chmod(".", 0o711)
	if err := a.Commit("one"); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit("again"); err == nil {
		t.Error("second Commit succeeded")
	}
	for range 2 {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if !s.Exists("one") {
		t.Fatal("committed snapshot missing")
	}

	b, err := s.Prepare(ctx, []ID{"one"})
	if err != nil {
		t.Fatal(err)
	}
	checkRoot(t, b.Upper(), 0o711, 123)
	newTree(t, b.Upper()).file("other", "o", 0o644)
	if err := b.Commit("one"); err != nil { // same id: discarded
		t.Errorf("Commit to an existing id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir("one"), "other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Commit to an existing id replaced it: %v", err)
	}
	b.Close()
	s.waitTrash() // removed in the background
	if _, err := os.Stat(b.activeState.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left %s: %v", b.activeState.dir, err)
	}

	m, release, err := s.View(ctx, []ID{"one"})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if want := []string{s.Dir("one"), filepath.Join(s.snaps, emptyDir)}; !slices.Equal(m.Lowers, want) || !m.ReadOnly() || m.Stub != "" {
		t.Errorf("View = %+v, want read-only lowers %v", m, want)
	}
	err = inMount(t, m, func(root string) {
		if data, err := os.ReadFile(filepath.Join(root, "big2")); err != nil || len(data) != 1<<20 {
			t.Errorf("view: big2 has %d bytes, %v", len(data), err)
		}
		if err := os.WriteFile(filepath.Join(root, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("writing into a view: %v, want EROFS", err)
		}
	})
	if err != nil {
		t.Fatalf("mounting the view: %v", err)
	}
	if _, err := s.Prepare(ctx, []ID{"one", "missing"}); err == nil {
		t.Error("Prepare on a missing parent succeeded")
	}

	n, size, err := s.Usage()
	if err != nil || n != 1 || size < 1<<20 || size > 1<<20+64<<10 {
		t.Errorf("Usage = %d snapshots, %d bytes, %v; want 1 and about 1 MiB (hardlinks once)", n, size, err)
	}
	if err := s.Remove("one"); err != nil {
		t.Fatal(err)
	}
	if s.Exists("one") {
		t.Error("removed snapshot still exists")
	}
	if ids, _ := s.List(); len(ids) != 0 {
		t.Errorf("List after Remove = %v", ids)
	}
}

func checkRoot(t *testing.T, dir string, mode, uid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mode&0o7777 != mode || st.Uid != uid {
		t.Errorf("%s: mode %o uid %d (%v), want %o %d", dir, st.Mode&0o7777, st.Uid, err, mode, uid)
	}
}

// hostMount mounts a tmpfs at dir in the host mount namespace and makes
// sure it is gone when the test ends, whatever happens.
func hostMount(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mounting tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		for unix.Unmount(dir, unix.MNT_DETACH) == nil {
		}
	})
}

func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}

func TestCleanupMounts(t *testing.T) {
	testutil.RequireRoot(t)
	runtime.LockOSThread() // the host namespace, not a Private thread's
	defer runtime.UnlockOSThread()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "root2") // shares the prefix, not the directory
	merged := filepath.Join(root, "tmp", "s-dead", "step 1", "merged")
	hostMount(t, merged)
	hostMount(t, filepath.Join(merged, "proc"))
	hostMount(t, filepath.Join(root, "tmp", "s-dead", "stacked"))
	hostMount(t, filepath.Join(root, "tmp", "s-dead", "stacked"))
	hostMount(t, outside)
	if got := mountsUnder(t, root); len(got) != 4 {
		t.Fatalf("set-up mounts under root: %v", got)
	}

	s, err := Open(root) // sweeps mounts, then the dead session
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mountsUnder(t, root); len(got) != 0 {
		t.Errorf("mounts left under root: %v", got)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp", "s-dead")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead session not removed: %v", err)
	}
	if got := mountsUnder(t, outside); len(got) != 1 {
		t.Errorf("mount outside root touched: %v", got)
	}

	hostMount(t, filepath.Join(root, "tmp", "again"))
	if n, err := CleanupMounts(root); n != 1 || err != nil {
		t.Errorf("CleanupMounts = %d, %v; want 1", n, err)
	}
	if n, err := CleanupMounts(filepath.Join(base, "missing")); n != 0 || err != nil {
		t.Errorf("CleanupMounts(missing) = %d, %v", n, err)
	}
	if _, err := CleanupMounts("/"); err == nil {
		t.Error("CleanupMounts(/) accepted")
	}
}

// cancelAfter cancels a context once limit bytes have been read through
// it, and counts what was read.
type cancelAfter struct {
	r           io.Reader
	read, limit int
	cancel      context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.read += n; c.read >= c.limit {
		c.cancel()
	}
	return n, err
}

// TestUnpackCancel: cancelling stops an unpack in the middle of a big
// file, and leaves no snapshot.
func TestUnpackCancel(t *testing.T) {
	testutil.RequireRoot(t)
	s := openStoreT(t, t.TempDir())
	data := makeTar(t, reg("small", "s"), reg("big", strings.Repeat("x", 8<<20)), reg("after", "a"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancelAfter{r: bytes.NewReader(data), limit: 2 << 20, cancel: cancel}
	if err := s.Unpack(ctx, layerIDOf(data), r); !errors.Is(err, context.Canceled) {
		t.Fatalf("Unpack = %v, want context.Canceled", err)
	}
	if r.read > r.limit+copyBufferSize {
		t.Errorf("Unpack read %d of %d bytes after the cancel at %d", r.read, len(data), r.limit)
	}
	if s.Exists(layerIDOf(data)) {
		t.Error("a cancelled Unpack left a snapshot")
	}
}

// TestUnpackLyingDiffID is the store-level reproduction of a poisoned
// snapshot: a layer unpacked under another layer's diff ID is refused, so
// the honest layer unpacked next under that id is the one its image sees.
func TestUnpackLyingDiffID(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	s := openStoreT(t, t.TempDir())
	legit, evil := makeTar(t, reg("etc/motd", "legit")), makeTar(t, reg("etc/motd", "evil"))
	id := layerIDOf(legit)
	err := s.Unpack(ctx, id, bytes.NewReader(evil))
	want := "layer content does not match its diff ID sha256:" + string(id) + ": got sha256:" + string(layerIDOf(evil))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Unpack of a lying layer = %v, want an error containing %q", err, want)
	}
	if s.Exists(id) {
		t.Fatal("the lying layer was published")
	}
	if err := s.Unpack(ctx, id, bytes.NewReader(legit)); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(s.Dir(id), "etc/motd")); err != nil || string(data) != "legit" {
		t.Errorf("etc/motd = %q, %v; want the honest layer's", data, err)
	}
}

// TestUnpackSizeLimit: the store's limit is a typed error that names it.
func TestUnpackSizeLimit(t *testing.T) {
	testutil.RequireRoot(t)
	s, err := OpenOptions(t.TempDir(), Options{MaxLayerSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.MaxLayerSize() != 64<<10 {
		t.Errorf("MaxLayerSize = %d, want %d", s.MaxLayerSize(), 64<<10)
	}
	data := makeTar(t, reg("big", strings.Repeat("x", 100<<10)))
	err = s.Unpack(context.Background(), layerIDOf(data), bytes.NewReader(data))
	var sl *SizeLimitError
	if !errors.As(err, &sl) || sl.Limit != 64<<10 || !strings.Contains(err.Error(), "64 KiB") || !strings.Contains(err.Error(), "BUILDER_MAX_LAYER_SIZE") {
		t.Errorf("Unpack over the limit = %v, want a SizeLimitError naming 64 KiB and BUILDER_MAX_LAYER_SIZE", err)
	}
	for _, c := range []struct {
		opt, want int64
	}{{0, DefaultMaxLayerSize}, {-1, -1}, {5, 5}} {
		s, err := OpenOptions(t.TempDir(), Options{MaxLayerSize: c.opt})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.MaxLayerSize(); got != c.want {
			t.Errorf("Options{MaxLayerSize: %d}: MaxLayerSize() = %d, want %d", c.opt, got, c.want)
		}
		s.Close()
	}
}

// TestOpenMakesRootPrivate: the snapshots may be the first to create the
// store, which holds build-arg values: its root must be 0700 either way.
func TestOpenMakesRootPrivate(t *testing.T) {
	for _, existing := range []bool{false, true} {
		root := filepath.Join(t.TempDir(), "store")
		if existing {
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		s, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		fi, err := os.Stat(root)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("store root (existing %v) has mode %v, want 0700", existing, fi.Mode().Perm())
		}
	}
}
