package executor

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/builderdev/builder/cache"
)

// TestForEach: every index once, in order on one goroutine with a limit
// of 1; the first error or the end of the context stops what has not
// started, and the error says which.
func TestForEach(t *testing.T) {
	const n = 200
	boom := errors.New("boom")
	for _, c := range []struct {
		name      string
		limit     int
		failAt    int  // -1: never
		cancelAt  int  // -1: never; the parent context is cancelled at this index
		cancelled bool // the context is cancelled before forEach starts
		want      error
	}{
		{"per CPU", 0, -1, -1, false, nil},
		{"one", 1, -1, -1, false, nil},
		{"three", 3, -1, -1, false, nil},
		{"error, one", 1, 5, -1, false, boom},
		{"error, three", 3, 5, -1, false, boom},
		{"cancelled midway, one", 1, -1, 10, false, context.Canceled},
		{"cancelled midway, three", 3, -1, 10, false, context.Canceled},
		{"cancelled before, one", 1, -1, -1, true, context.Canceled},
		{"cancelled before, three", 3, -1, -1, true, context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancelled {
				cancel()
			}
			stop := max(c.failAt, c.cancelAt) // -1: none
			var mu sync.Mutex
			var order []int
			err := forEach(ctx, n, c.limit, func(ctx context.Context, i int) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				switch {
				case i == c.cancelAt:
					cancel()
				case i == c.failAt:
					return boom
				case stop >= 0 && i > stop && c.limit != 1:
					// Hold the worker until the stop is seen, so that the
					// bound below holds however the workers are scheduled.
					<-ctx.Done()
				}
				return nil
			})
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("forEach = %v, want %v", err, c.want)
			}
			if c.want == nil {
				if len(order) != n {
					t.Fatalf("fn ran %d times, want %d", len(order), n)
				}
				seen := map[int]bool{}
				for k, i := range order {
					if seen[i] {
						t.Fatalf("fn(%d) ran twice", i)
					}
					seen[i] = true
					if c.limit == 1 && i != k {
						t.Fatalf("with a limit of 1, call %d was fn(%d)", k, i)
					}
				}
				return
			}
			// Stopped at index stop: besides the calls up to it, only those
			// already running (limit-1) and the one waiting for a worker
			// may have run.
			most := 0
			if !c.cancelled {
				most = stop + 1
				if c.limit > 1 {
					most += c.limit
				}
			}
			if len(order) > most {
				t.Errorf("fn ran %d times for a stop at %d with a limit of %d, want at most %d", len(order), stop, c.limit, most)
			}
		})
	}
}

// cancelledCopy makes a context of n files and selects and walks it as
// COPY . /app does.
func cancelledCopy(t *testing.T, n int) (*build, []*source) {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte(strings.Repeat("x", i)), 0o644)
	}
	store, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tree, err := openTree(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	srcs, err := selectSources(tree, []string{"."}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		if err := s.walk(nil); err != nil {
			t.Fatal(err)
		}
	}
	return &build{opts: Options{ContextDir: dir}, cache: store}, srcs
}

// TestCopyStopsWhenCancelled: hashing the sources and writing the files
// stop at the end of the build's context, with its error, and do nothing
// once it has ended.
func TestCopyStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, srcs := cancelledCopy(t, 100)
	if err := b.hashSources(ctx, sha256.New(), srcs); !errors.Is(err, context.Canceled) {
		t.Errorf("hashSources on a cancelled context = %v, want context.Canceled", err)
	}
	for _, e := range srcs[0].entries {
		if e.sum.Hex != "" {
			t.Fatalf("hashSources on a cancelled context hashed %s", e.rel)
		}
	}

	b, srcs = cancelledCopy(t, 100)
	if err := b.hashSources(context.Background(), sha256.New(), srcs); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{0, 1} {
		dst := t.TempDir()
		c, err := copyInto(context.Background(), dst, dst, copyOpts{dest: "/app", inCtx: true, patterns: []string{"."}}, srcs)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.finishDeferred(ctx, workers); !errors.Is(err, context.Canceled) {
			t.Errorf("finishDeferred(%d workers) on a cancelled context = %v, want context.Canceled", workers, err)
		}
		if ents, _ := os.ReadDir(filepath.Join(dst, "app")); len(ents) != 0 {
			t.Errorf("finishDeferred(%d workers) on a cancelled context wrote %d files", workers, len(ents))
		}
		if _, err := copyInto(ctx, dst, dst, copyOpts{dest: "/app2", inCtx: true, patterns: []string{"."}}, srcs); !errors.Is(err, context.Canceled) {
			t.Errorf("copyInto on a cancelled context = %v, want context.Canceled", err)
		}
	}
}
