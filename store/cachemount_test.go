package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
)

// TestCacheMountSharing: shared holders get one directory together; a
// private holder gets another instance while the first is held, and the
// first again once it is free; locked is exclusive; prune removes all.
func TestCacheMountSharing(t *testing.T) {
	s := openTest(t)
	a, err := s.CacheMount("go-build", SharingShared)
	if err != nil || !a.Created {
		t.Fatalf("first mount: %+v, %v; want a new directory", a, err)
	}
	os.WriteFile(filepath.Join(a.Dir, "f"), []byte("x"), 0o644)
	b, err := s.CacheMount("go-build", SharingShared)
	if err != nil || b.Dir != a.Dir || b.Created {
		t.Fatalf("second shared mount: %+v, %v; want %s again", b, err, a.Dir)
	}
	// Shared holders keep a locked one out.
	if l, ok, _ := fsutil.TryAcquire(a.Dir+".lock", true); ok {
		l.Release()
		t.Error("an exclusive lock was free while shared holders held the mount")
	}
	a.Release()
	b.Release()

	p1, err := s.CacheMount("go-build", SharingPrivate)
	if err != nil || p1.Dir != a.Dir {
		t.Fatalf("private mount: %+v, %v; want the free %s", p1, err, a.Dir)
	}
	p2, err := s.CacheMount("go-build", SharingPrivate)
	if err != nil || p2.Dir == p1.Dir || !p2.Created {
		t.Fatalf("second private mount while the first is held: %+v, %v; want a new instance", p2, err)
	}
	p1.Release()
	p2.Release()

	l, err := s.CacheMount("go-build", SharingLocked)
	if err != nil {
		t.Fatal(err)
	}
	if other, ok, _ := fsutil.TryAcquire(l.Dir+".lock", false); ok {
		other.Release()
		t.Error("a locked mount let a shared holder in")
	}
	l.Release()

	if _, err := s.CacheMount("x", "sometimes"); err == nil {
		t.Error("an unknown sharing mode was accepted")
	}
	u, err := s.Usage()
	// In blocks, as du counts: the directories and the one-byte file.
	want, _ := fsutil.DiskUsage(filepath.Join(s.Root(), cacheMountsDir))
	if err != nil || u.CacheMounts != 2 || u.CacheMountsSize != want || want < 4096 {
		t.Errorf("usage: %d mounts, %d bytes (%v); want 2 (an id and its second private instance) and du's %d", u.CacheMounts, u.CacheMountsSize, err, want)
	}
	if f, err := s.Check(context.Background(), false); len(f) != 0 || err != nil {
		t.Errorf("check with cache mounts: %v, %v; want a sound store", f, err)
	}
	rep, err := s.Prune(context.Background(), cache.PruneOptions{})
	if err != nil || rep.CacheMounts != 2 {
		t.Errorf("prune: %+v, %v; want 2 cache mounts removed", rep, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), cacheMountsDir)); !os.IsNotExist(err) {
		t.Errorf("cache mounts after prune: %v", err)
	}
}
