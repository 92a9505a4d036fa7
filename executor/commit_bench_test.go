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
// the tar stream of the directory through sha256 (cache.HoldLayer; the
// snapshot holds the layer). Its MB/s is the commit throughput issue 19
// measures. BenchmarkCompressFat512MiB is what a first push of that
// layer then costs: regenerate, check, gzip, store.
//
//	go test -run '^$' -bench 'CommitFat|CompressFat' -benchtime 3x ./executor
func BenchmarkCommitFat512MiB(b *testing.B) {
	dir := fatDir(b)
	b.SetBytes(fatSize)
	for b.Loop() {
		_, err := cache.HoldLayer(context.Background(), func(w io.Writer) error {
			return snapshot.WriteLayer(w, dir, snapshot.WriteOptions{})
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompressFat512MiB(b *testing.B) {
	dir := fatDir(b)
	store, err := cache.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	b.SetBytes(fatSize)
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

const fatSize = 512 << 20

// fatDir makes the fat layer's upper dir: one file, half random, half text.
func fatDir(b *testing.B) string {
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "fat"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, rand.NewChaCha8([32]byte{7}), fatSize/2); err != nil {
		b.Fatal(err)
	}
	line := []byte("the quick brown fox jumps over the lazy dog 0123456789\n")
	for n := 0; n < fatSize/2; n += len(line) {
		w.Write(line[:min(len(line), fatSize/2-n)])
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return dir
}
