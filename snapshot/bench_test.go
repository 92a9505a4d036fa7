package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFat makes the "fat" layer: one file of size bytes, the first half
// random (incompressible), the second text.
func writeFat(b *testing.B, dir string, size int64) {
	f, err := os.Create(filepath.Join(dir, "fat"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.NewChaCha8([32]byte{1})
	if _, err := io.CopyN(w, rng, size/2); err != nil {
		b.Fatal(err)
	}
	line := "the quick brown fox jumps over the lazy dog 0123456789\n"
	for n := int64(0); n < size-size/2; n += int64(len(line)) {
		w.WriteString(line[:min(int64(len(line)), size-size/2-n)])
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWriteLayer512MiB is the hot path of a build that writes a big
// file: the MB/s it reports is WriteLayer alone (page cache to io.Discard).
func BenchmarkWriteLayer512MiB(b *testing.B) {
	const size = 512 << 20
	dir := b.TempDir()
	writeFat(b, dir, size)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if err := WriteLayer(io.Discard, dir, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// manyFiles makes 20,000 files of 1-4 KiB in 200 directories.
func manyFiles(b *testing.B, dir string) int64 {
	var total int64
	for d := range 200 {
		sub := filepath.Join(dir, fmt.Sprintf("dir%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			data := strings.Repeat(fmt.Sprintf("%d/%d ", d, f), 100+(d*f)%300)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%03d.txt", f)), []byte(data), 0o644); err != nil {
				b.Fatal(err)
			}
			total += int64(len(data))
		}
	}
	return total
}

func BenchmarkWriteLayer20kFiles(b *testing.B) {
	dir := b.TempDir()
	b.SetBytes(manyFiles(b, dir))
	b.ResetTimer()
	for b.Loop() {
		if err := WriteLayer(io.Discard, dir, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(20000*b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkApply20kFiles is the cost of unpacking a base layer.
func BenchmarkApply20kFiles(b *testing.B) {
	src := b.TempDir()
	b.SetBytes(manyFiles(b, src))
	var layer bytes.Buffer
	if err := WriteLayer(&layer, src, WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(b.TempDir(), "dst")
		if err := Apply(context.Background(), bytes.NewReader(layer.Bytes()), dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(20000*b.N)/b.Elapsed().Seconds(), "files/s")
}
