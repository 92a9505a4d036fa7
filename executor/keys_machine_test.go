package executor_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builderdev/builder/executor"
)

func debugLines(evs []executor.Event) string {
	var out []string
	for _, e := range evs {
		if e.Kind == executor.BuildWarning && strings.HasPrefix(e.Line, "key ") {
			out = append(out, e.Line)
		}
	}
	return strings.Join(out, "\n")
}

// TestKeysMachineIndependent: two checkouts of the same context, with
// other file times and owners, built on two stores at other paths, give
// the same key at every step, so a cache exported by one CI machine is
// hit by another.
func TestKeysMachineIndependent(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	// The same base on both: newEnv's has its own build times.
	baseCtx := t.TempDir()
	writeTar(t, filepath.Join(baseCtx, "rootfs.tar"), a.base)
	epoch := time.Unix(1700000000, 0)
	for _, e := range []*env{a, b} {
		if _, err := e.build(t, baseCtx, "FROM scratch\nADD rootfs.tar /\n", &buildOpts{epoch: &epoch, tags: []string{"base:epoch"}}); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"f": "hello\n", "dir/g": "world\n", "dir/sub/h": "!\n"}
	checkout := func(owner int, mtime time.Time) string {
		dir := t.TempDir()
		for name, data := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if err := os.Lchown(p, owner, owner); err != nil {
				return err
			}
			return os.Chtimes(p, mtime, mtime)
		})
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	ctxA := checkout(0, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	ctxB := checkout(4321, time.Date(2026, 6, 6, 6, 6, 6, 0, time.UTC))
	const df = `FROM base:epoch
COPY . /app
COPY --chown=1:2 dir /d
ADD f /added
RUN cat /app/f /d/g > /x
ENV A=1
WORKDIR /w
`
	var evA, evB []executor.Event
	ra, err := a.build(t, ctxA, df, &buildOpts{debugKeys: true, events: &evA})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.build(t, ctxB, df, &buildOpts{debugKeys: true, events: &evB})
	if err != nil {
		t.Fatal(err)
	}
	if len(ra.Steps) != len(rb.Steps) || len(ra.Steps) < 6 {
		t.Fatalf("%d and %d steps", len(ra.Steps), len(rb.Steps))
	}
	for i := range ra.Steps {
		if ra.Steps[i].Key != rb.Steps[i].Key {
			t.Errorf("step %d (%s): keys differ between the two machines", i, ra.Steps[i].Entry.History.CreatedBy)
			t.Logf("%s\n%s", debugLines(evA), debugLines(evB))
			break
		}
	}
	// The layers themselves may differ: a COPY keeps file times, as
	// docker's does, and new files get the time of the build. Only the
	// keys must not depend on the machine.
}
