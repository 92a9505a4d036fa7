package cache

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

var hourAgo = time.Now().Add(-time.Hour).UnixNano()

func oldStat(i int) FileStat {
	t := hourAgo
	return FileStat{Size: int64(i), Mtime: t + int64(i), Ctime: t + int64(i), Ino: uint64(1000 + i), Mode: 0o644}
}

func TestContextHashesRoundTrip(t *testing.T) {
	s := openTest(t)
	dir := t.TempDir()
	c, err := s.ContextHashes(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		c.Put(fmt.Sprintf("f%d", i), oldStat(i), sha256Of([]byte{byte(i)}))
	}
	fresh := FileStat{Size: 1, Mtime: time.Now().UnixNano(), Ctime: time.Now().UnixNano()}
	c.Put("racy", fresh, sha256Of([]byte("racy")))
	if h, ok := c.Get("racy", fresh); !ok || h != sha256Of([]byte("racy")) {
		t.Error("a racy entry is not served within its build")
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}

	c2, err := s.ContextHashes(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rel  string
		st   FileStat
		want bool
	}{
		{"unchanged", "f1", oldStat(1), true},
		{"other size", "f2", FileStat{Size: 99, Mtime: oldStat(2).Mtime, Ctime: oldStat(2).Ctime, Ino: oldStat(2).Ino, Mode: 0o644}, false},
		{"other mtime", "f3", func() FileStat { st := oldStat(3); st.Mtime++; return st }(), false},
		{"other ctime", "f3", func() FileStat { st := oldStat(3); st.Ctime++; return st }(), false},
		{"other inode", "f3", func() FileStat { st := oldStat(3); st.Ino++; return st }(), false},
		{"other mode", "f3", func() FileStat { st := oldStat(3); st.Mode = 0o755; return st }(), false},
		{"unknown", "nope", oldStat(1), false},
		{"racy one not saved", "racy", fresh, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := c2.Get(tc.rel, tc.st)
			if ok != tc.want {
				t.Fatalf("Get(%s) ok = %v, want %v", tc.rel, ok, tc.want)
			}
			if ok && h != sha256Of([]byte{1}) {
				t.Errorf("Get(%s) = %s", tc.rel, h)
			}
		})
	}
	// A different directory has its own hashes.
	other, _ := s.ContextHashes(t.TempDir())
	if _, ok := other.Get("f1", oldStat(1)); ok {
		t.Error("hashes leaked between context directories")
	}
	if _, err := s.ContextHashes("relative/dir"); err == nil {
		t.Error("ContextHashes of a relative path succeeded")
	}
}

func TestContextHashesSave(t *testing.T) {
	s := openTest(t)
	dir := t.TempDir()
	c, _ := s.ContextHashes(dir)
	for i := range 10 {
		c.Put(fmt.Sprint(i), oldStat(i), sha256Of([]byte{byte(i)}))
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	fi1, err := os.Stat(c.path)
	if err != nil {
		t.Fatal(err)
	}

	// A build that reads everything and changes nothing writes nothing.
	c, _ = s.ContextHashes(dir)
	for i := range 10 {
		c.Get(fmt.Sprint(i), oldStat(i))
	}
	c.Put("3", oldStat(3), sha256Of([]byte{3})) // same value again
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(c.path)
	if !os.SameFile(fi1, fi2) {
		t.Error("Save rewrote unchanged hashes")
	}

	// A build that uses only some files drops the rest.
	c, _ = s.ContextHashes(dir)
	c.Get("1", oldStat(1))
	c.Put("new", oldStat(50), sha256Of([]byte("new")))
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c, _ = s.ContextHashes(dir)
	if len(c.m) != 2 {
		t.Errorf("after a build using 2 files the file holds %d entries, want 2", len(c.m))
	}
}

func TestContextHashesCorrupt(t *testing.T) {
	s := openTest(t)
	dir := t.TempDir()
	c, _ := s.ContextHashes(dir)
	for i := range 100 {
		c.Put(fmt.Sprint(i), oldStat(i), sha256Of([]byte{byte(i)}))
	}
	c.Save()
	good, _ := os.ReadFile(c.path)
	for name, data := range map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)/2],
		"flipped":   append(append([]byte{}, good[:40]...), append([]byte{good[40] ^ 1}, good[41:]...)...),
		"garbage":   []byte("not a context file at all"),
	} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(c.path, data, 0o644)
			c, err := s.ContextHashes(dir)
			if err != nil {
				t.Fatalf("ContextHashes of a damaged file: %v", err)
			}
			if len(c.m) != 0 {
				t.Errorf("damaged file gave %d entries", len(c.m))
			}
		})
	}
}

func TestContextHashesConcurrent(t *testing.T) {
	s := openTest(t)
	c, _ := s.ContextHashes(t.TempDir())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				rel := fmt.Sprint(i)
				if _, ok := c.Get(rel, oldStat(i)); !ok {
					c.Put(rel, oldStat(i), sha256Of([]byte(rel)))
				}
				if i%100 == g {
					c.Save()
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if len(c.m) != 500 {
		t.Errorf("%d entries, want 500", len(c.m))
	}
}

// BenchmarkContextHashesLoad loads 20,000 remembered hashes, the size of
// a large monorepo context; the target is a few milliseconds.
//
//	go test ./cache -run '^$' -bench ContextHashesLoad
func BenchmarkContextHashesLoad(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	dir := b.TempDir()
	c, _ := s.ContextHashes(dir)
	for i := range 20000 {
		c.Put(fmt.Sprintf("src/pkg%03d/file%05d.go", i/100, i), oldStat(i), sha256Of([]byte(fmt.Sprint(i))))
	}
	if err := c.Save(); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(c.path)
	b.ReportMetric(float64(fi.Size()), "file-bytes")
	for b.Loop() {
		c, err := s.ContextHashes(dir)
		if err != nil || len(c.m) != 20000 {
			b.Fatalf("loaded %d, %v", len(c.m), err)
		}
	}
}
