package executor_test

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkContextCold20k: the context of BenchmarkContextRebuild20k
// (20,000 files of 5 KiB in 200 directories) copied with COPY . /app into
// a fresh store each time, so every file is listed, hashed, copied and
// put into a new layer: what reading the context costs shows in full.
func BenchmarkContextCold20k(b *testing.B) {
	ctxDir := b.TempDir()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	raw := make([]byte, 2560)
	for d := range 200 {
		dir := filepath.Join(ctxDir, fmt.Sprintf("d%03d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte(hex.EncodeToString(raw)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	df := "FROM busybox:test\nCOPY . /app\n"
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newBenchEnv(b) // a fresh store remembers no hash of the context
		b.StartTimer()
		e.build(b, ctxDir, df, true)
	}
}
