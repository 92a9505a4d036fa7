package executor_test

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

// BenchmarkCommitFat512MiB is the commit of the bench's "fat" layer (512
// MiB, half random, half text) the way a RUN step commits its upper dir:
// the tar stream of the directory into PutLayer (hash, compress, store).
// Its MB/s is the commit throughput issue 19 measures against.
//
//	go test -run '^$' -bench CommitFat -benchtime 3x ./executor
func BenchmarkCommitFat512MiB(b *testing.B) {
	const size = 512 << 20
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "fat"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, rand.NewChaCha8([32]byte{7}), size/2); err != nil {
		b.Fatal(err)
	}
	line := []byte("the quick brown fox jumps over the lazy dog 0123456789\n")
	for n := 0; n < size/2; n += len(line) {
		w.Write(line[:min(len(line), size/2-n)])
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	store, err := cache.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	b.SetBytes(size)
	for b.Loop() {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(snapshot.WriteLayer(pw, dir, snapshot.WriteOptions{})) }()
		l, err := store.PutLayer(context.Background(), pr, cache.Compression{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		// Each round stores the same blob; remove it so every round writes.
		p := filepath.Join(store.Root(), "blobs", "sha256", l.Descriptor.Digest.Hex)
		if err := os.Remove(p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
