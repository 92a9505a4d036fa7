package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/parser"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func singleStageEvents() []executor.Event {
	step := func(id, n int, name string) executor.Event {
		return executor.Event{ID: id, Stage: "0", Step: n, Steps: 4, Name: name}
	}
	with := func(e executor.Event, kind executor.EventKind, ms int, f func(*executor.Event)) executor.Event {
		e.Kind, e.Time = kind, at(ms)
		if f != nil {
			f(&e)
		}
		return e
	}
	from, cp, run, test := step(1, 1, "FROM scratch"), step(2, 2, "COPY app.py /app/"), step(3, 3, "RUN make"), step(4, 4, "RUN ./test.sh")
	progress := func(n int64) func(*executor.Event) {
		return func(e *executor.Event) { e.Label, e.Current = "layer", n }
	}
	log := func(stream int, line string) func(*executor.Event) {
		return func(e *executor.Event) { e.Stream, e.Line = stream, line }
	}
	runErr := &executor.StepError{Pos: parser.Pos{File: "Dockerfile", Line: 5}, Instruction: "RUN",
		Err: &executor.ExitError{Command: "./test.sh", Code: 1}}
	return []executor.Event{
		with(from, executor.StepDone, 0, nil), // FROM scratch: done without a start
		with(cp, executor.StepStarted, 10, nil),
		with(cp, executor.StepProgress, 20, progress(1000)),
		with(cp, executor.StepProgress, 500, progress(5000)), // within a second: not shown
		with(cp, executor.StepProgress, 1200, progress(2_000_000)),
		with(cp, executor.StepDone, 1310, func(e *executor.Event) { e.Duration = 1300 * time.Millisecond }),
		with(run, executor.StepStarted, 1400, nil),
		with(run, executor.StepCached, 1401, nil),
		{Kind: executor.BuildWarning, Time: at(1500), Line: "[Warning] one or more build args were not consumed: FOO"},
		with(test, executor.StepStarted, 2000, nil),
		with(test, executor.StepLog, 2412, log(1, "ok 1 - parses")),
		with(test, executor.StepLog, 3000, log(2, "warning: slow")),
		with(test, executor.StepLog, 3001, log(0, "a note from the builder")),
		with(test, executor.StepFailed, 3100, func(e *executor.Event) { e.Err = runErr; e.Duration = 1100 * time.Millisecond }),
	}
}

// multiStageEvents interleaves two stages, one named and one not, with a
// pull whose bytes arrive in several events.
func multiStageEvents() []executor.Event {
	ev := func(kind executor.EventKind, id int, stage string, n, of int, name string, ms int) executor.Event {
		return executor.Event{Kind: kind, ID: id, Stage: stage, Step: n, Steps: of, Name: name, Time: at(ms)}
	}
	pull := func(cur int64, ms int) executor.Event {
		e := ev(executor.StepProgress, 1, "build", 1, 3, "FROM alpine", ms)
		e.Label, e.Current, e.Total = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", cur, 3_000_000
		return e
	}
	done := func(e executor.Event, d time.Duration) executor.Event {
		e.Kind, e.Duration = executor.StepDone, d
		return e
	}
	return []executor.Event{
		ev(executor.StepStarted, 1, "build", 1, 3, "FROM alpine", 0),
		ev(executor.StepStarted, 2, "1", 1, 2, "FROM scratch", 1),
		pull(1000, 100), // under 1%: the bar must still show
		done(ev(0, 2, "1", 1, 2, "FROM scratch", 2), 0),
		pull(2_000_000, 600),
		pull(3_000_000, 900),
		pull(3_000_000, 950), // the final count, again: shown once
		done(ev(0, 1, "build", 1, 3, "FROM alpine", 1000), time.Second),
		ev(executor.StepStarted, 3, "build", 2, 3, "RUN make", 1001),
		ev(executor.StepStarted, 4, "1", 2, 2, "COPY --from=build /out /", 1002),
		{Kind: executor.StepLog, ID: 3, Stage: "build", Step: 2, Steps: 3, Name: "RUN make", Stream: 1, Line: "cc -o out main.c", Time: at(1250)},
		done(ev(0, 3, "build", 2, 3, "RUN make", 1500), 499*time.Millisecond),
		ev(executor.StepCached, 4, "1", 2, 2, "COPY --from=build /out /", 1501),
	}
}

func renderPlain(events []executor.Event, multiStage bool) string {
	var b bytes.Buffer
	r := newPlainRenderer(&b, multiStage)
	for _, e := range events {
		r.Report(e)
	}
	r.Close()
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestPlainRenderer(t *testing.T) {
	t.Run("single stage", func(t *testing.T) {
		checkGolden(t, "plain/single.golden", renderPlain(singleStageEvents(), false))
	})
	t.Run("multi stage", func(t *testing.T) {
		checkGolden(t, "plain/multistage.golden", renderPlain(multiStageEvents(), true))
	})
}

func TestQuietRendererPrintsNothing(t *testing.T) {
	var b bytes.Buffer
	r := newRenderer("quiet", &b, testEnv(), false)
	for _, e := range singleStageEvents() {
		r.Report(e)
	}
	r.Close()
	if b.Len() != 0 {
		t.Errorf("quiet renderer wrote %q", b.String())
	}
}

// TestRenderersConcurrent reports from many goroutines at once; run it
// with -race. Every step's DONE line must come out exactly once.
func TestRenderersConcurrent(t *testing.T) {
	const workers, steps = 8, 50
	for _, mode := range []string{"plain", "tty"} {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			var b bytes.Buffer
			w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return b.Write(p) })
			r := newRenderer(mode, w, testEnv(), true)
			var wg sync.WaitGroup
			for g := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for s := range steps {
						id := g*steps + s + 1
						e := executor.Event{ID: id, Stage: strconv.Itoa(g), Step: s + 1, Steps: steps, Name: "RUN x", Time: time.Now()}
						for _, k := range []executor.EventKind{executor.StepStarted, executor.StepProgress, executor.StepLog, executor.StepDone} {
							e.Kind, e.Label, e.Current, e.Total, e.Line = k, "layer", 10, 20, "out"
							r.Report(e)
						}
					}
				}()
			}
			wg.Wait()
			r.Close()
			out := b.String()
			if mode == "tty" {
				// the final frame: one line per step
				final := out[strings.LastIndex(out, "[+] Building"):]
				if n := strings.Count(final, "] RUN x "); n != workers*steps {
					t.Errorf("%d steps in the final frame, want %d", n, workers*steps)
				}
				return
			}
			if n := strings.Count(out, " DONE 0.0s\n"); n != workers*steps {
				t.Errorf("%d DONE lines, want %d", n, workers*steps)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestPrintError(t *testing.T) {
	pos := parser.Pos{File: "Dockerfile", Line: 9}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"step error", &executor.StepError{Pos: pos, Instruction: "COPY", Err: errors.New("stat app.py: no such file in build context")},
			"Dockerfile:9: COPY failed: stat app.py: no such file in build context\n"},
		{"run output first", &executor.StepError{Pos: pos, Instruction: "RUN", Err: &executor.ExitError{Command: "make", Code: 2},
			Output: []string{"cc main.c", "main.c:1: error"}},
			"------\n > RUN output (last 2 lines):\ncc main.c\nmain.c:1: error\n------\nDockerfile:9: RUN make exited with code 2\n"},
		{"parse error", &parser.Error{Pos: parser.Pos{File: "Dockerfile.prod", Line: 7}, Msg: "unknown instruction: COPPY"},
			"Dockerfile.prod:7: unknown instruction: COPPY\n"},
		{"other", fmt.Errorf("opening store /x: %w", errors.New("permission denied")), "builder: opening store /x: permission denied\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		printError(&b, tt.err)
		if b.String() != tt.want {
			t.Errorf("%s: printError wrote\n%s\nwant\n%s", tt.name, b.String(), tt.want)
		}
	}
}

func TestStoreHints(t *testing.T) {
	env := testEnv("BUILDER_ROOT=/srv/store")
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("writing x: %w", &os.PathError{Op: "open", Path: "/srv/store/x", Err: syscall.EROFS}), "the store /srv/store is on a read-only file system"},
		{fmt.Errorf("writing x: %w", &os.PathError{Op: "write", Path: "/srv/store/x", Err: syscall.ENOSPC}), "no space left for the store /srv/store: 'builder prune'"},
		{errors.New("other"), ""},
	}
	for _, tt := range tests {
		h := strings.Join(storeHints(env, tt.err), "\n")
		if (tt.want == "") != (h == "") || !strings.Contains(h, tt.want) {
			t.Errorf("storeHints(%v) = %q, want %q", tt.err, h, tt.want)
		}
	}
}
