package executor_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/snapshot"
	"github.com/builderdev/builder/store"
)

// ran returns the names of the steps that ran (not cached) in a build.
func ran(events []executor.Event) []string {
	var out []string
	for _, e := range events {
		if e.Kind == executor.StepDone && e.Step > 1 {
			out = append(out, e.Name)
		}
	}
	return out
}

func cached(events []executor.Event) []string {
	var out []string
	for _, e := range events {
		if e.Kind == executor.StepCached {
			out = append(out, e.Name)
		}
	}
	return out
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildRan builds and returns the image ID and the steps that ran.
func (e *env) buildRan(t *testing.T, ctxDir, df string, o *buildOpts) (string, []string) {
	t.Helper()
	var events []executor.Event
	if o == nil {
		o = &buildOpts{}
	}
	o.events = &events
	res, err := e.build(t, ctxDir, df, o)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return res.Image.ID.String(), ran(events)
}

const threeCopies = `FROM busybox:test
COPY a.txt /a/
RUN cat /a/a.txt > /a/copy
COPY b.txt /b/
RUN cat /b/b.txt > /b/copy
COPY c/ /c/
RUN ls /c > /c/list
LABEL stage=test
`

func TestCacheInvalidation(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"a.txt": "a", "b.txt": "b", "c/x": "x", "c/y": "y", "ignored.log": "1", ".dockerignore": "*.log\n"})

	id1, steps := e.buildRan(t, ctxDir, threeCopies, nil)
	if len(steps) != 6 {
		t.Fatalf("first build ran %v, want all 6 steps", steps)
	}
	check := func(name string, df string, o *buildOpts, wantRan []string, wantSameID bool) {
		t.Helper()
		id, steps := e.buildRan(t, ctxDir, df, o)
		if !slices.Equal(steps, wantRan) {
			t.Errorf("%s: ran %q, want %q", name, steps, wantRan)
		}
		if wantSameID && id != id1 {
			t.Errorf("%s: image ID changed: %s, want %s", name, id, id1)
		}
	}

	check("no-op rebuild", threeCopies, nil, nil, true)

	// mtime only: the content hash decides, not the time.
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(ctxDir, "b.txt"), future, future)
	check("touch b.txt", threeCopies, nil, nil, true)

	writeFiles(t, ctxDir, map[string]string{"ignored.log": "changed"})
	check("edit an ignored file", threeCopies, nil, nil, true)

	check("edit a LABEL", strings.Replace(threeCopies, "stage=test", "stage=other", 1), nil, nil, false)

	writeFiles(t, ctxDir, map[string]string{"b.txt": "B"})
	check("edit b.txt", threeCopies, nil, []string{"COPY b.txt /b/", "RUN cat /b/b.txt > /b/copy", "COPY c/ /c/", "RUN ls /c > /c/list"}, false)

	os.Chmod(filepath.Join(ctxDir, "c/y"), 0o600)
	check("chmod c/y", threeCopies, nil, []string{"COPY c/ /c/", "RUN ls /c > /c/list"}, false)
}

// TestCacheNoCacheFilter checks --no-cache-filter: the named stage's steps
// run again, any case of its name will do, and other stages stay cached.
func TestCacheNoCacheFilter(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	const df = `FROM busybox:test AS deps
RUN echo deps > /deps
FROM busybox:test AS app
COPY --from=deps /deps /deps
RUN cat /deps > /copy
`
	if _, steps := e.buildRan(t, ctxDir, df, nil); len(steps) != 3 {
		t.Fatalf("first build ran %q, want 3 steps", steps)
	}
	_, steps := e.buildRan(t, ctxDir, df, &buildOpts{noCacheFor: []string{"app"}})
	if want := []string{"COPY --from=deps /deps /deps", "RUN cat /deps > /copy"}; !slices.Equal(steps, want) {
		t.Errorf("--no-cache-filter app ran %q, want %q", steps, want)
	}
	_, steps = e.buildRan(t, ctxDir, df, &buildOpts{noCacheFor: []string{"DEPS"}})
	if len(steps) == 0 || steps[0] != "RUN echo deps > /deps" {
		t.Errorf("--no-cache-filter DEPS ran %q, want the deps stage's RUN first", steps)
	}
	if _, steps := e.buildRan(t, ctxDir, df, nil); len(steps) != 0 {
		t.Errorf("a plain rebuild after the filtered ones ran %q, want nothing", steps)
	}
}

// TestCacheBuildArgs: a build arg reaches the keys of the RUN steps in
// the scope of an ARG that declares it, and no others; a proxy variable
// reaches none. Each case builds before and after its change on a
// Dockerfile of its own (ENV CASE), and its first build must run every
// step, so no case depends on what another left in the cache.
func TestCacheBuildArgs(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	const steps = `RUN echo one > /one
ARG USED=1
RUN echo "$USED" > /used
ARG LATER
RUN echo two > /two
`
	args := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name          string
		before, after map[string]string
		want          []string
	}{
		{"same args", args("USED", "a"), args("USED", "a"), nil},
		{"an arg no ARG declares", args("USED", "a"), args("USED", "a", "NOT_DECLARED", "x"), nil},
		{"the arg a step uses", args("USED", "a"), args("USED", "b"), []string{`RUN echo "$USED" > /used`, "RUN echo two > /two"}},
		{"an arg declared after the first steps", args("USED", "b"), args("USED", "b", "LATER", "z"), []string{"RUN echo two > /two"}},
		{"a proxy variable", args("USED", "b", "LATER", "z"), args("USED", "b", "LATER", "z", "HTTP_PROXY", "http://proxy:3128"), nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			df := fmt.Sprintf("FROM busybox:test\nENV CASE=%d\n%s", i, steps)
			if _, ran := e.buildRan(t, ctxDir, df, &buildOpts{args: c.before}); len(ran) != 3 {
				t.Fatalf("first build ran %q, want its three RUN steps", ran)
			}
			if _, ran := e.buildRan(t, ctxDir, df, &buildOpts{args: c.after}); !slices.Equal(ran, c.want) {
				t.Errorf("ran %q, want %q", ran, c.want)
			}
		})
	}
}

func TestCacheNoCache(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	df := "FROM busybox:test\nRUN echo hi > /hi\n"
	e.buildRan(t, ctxDir, df, nil)
	if _, steps := e.buildRan(t, ctxDir, df, &buildOpts{noCache: true}); len(steps) != 1 {
		t.Errorf("--no-cache ran %v, want the RUN step", steps)
	}
}

// TestReproducible builds twice without the cache and with
// SOURCE_DATE_EPOCH, and expects the same image digest.
func TestReproducible(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"app/main.sh": "echo hi\n", "app/lib/x": "x"})
	df := `FROM busybox:test
COPY app /app
RUN echo built > /app/out && mkdir -p /var/cache/x && touch /var/cache/x/stamp
WORKDIR /srv
ENV A=b
`
	epoch := time.Unix(1700000000, 0)
	var digests []string
	for i := 0; i < 2; i++ {
		res, err := e.build(t, ctxDir, df, &buildOpts{noCache: true, epoch: &epoch})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.Image.Manifest.Digest.String())
		if !res.Config.Created.Time.Equal(epoch) {
			t.Errorf("created = %v, want %v", res.Config.Created.Time, epoch)
		}
		time.Sleep(1100 * time.Millisecond) // a later second must not show
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %s vs %s", digests[0], digests[1])
	}
}

// TestConcurrentBuilds runs two builds of different Dockerfiles that share
// a base on one store at the same time, each with its own Store values as
// two processes would have, and then once more to see each other's steps.
func TestConcurrentBuilds(t *testing.T) {
	e := newEnv(t)
	dfs := []string{
		"FROM busybox:test\nRUN echo shared > /shared\nRUN sleep 1; echo one > /one\n",
		"FROM busybox:test\nRUN echo shared > /shared\nRUN sleep 1; echo two > /two\n",
	}
	var wg sync.WaitGroup
	errs := make([]error, len(dfs))
	for i, df := range dfs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e2 := e.reopen(t)
			_, errs[i] = e2.build(t, t.TempDir(), df, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
	}
	for _, df := range dfs {
		if _, steps := e.buildRan(t, t.TempDir(), df, nil); len(steps) != 0 {
			t.Errorf("rebuild after concurrent builds ran %v", steps)
		}
	}
}

func (e *env) reopen(t *testing.T) *env {
	t.Helper()
	e2 := *e
	st, err := store.Open(e.root, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e2.st, e2.store, e2.snaps = st, st.Cache(), st.Snapshots()
	return &e2
}

// TestPruneKeepsTagged prunes with a budget of zero and with --all, and
// checks the tagged image is still complete: it exports and skopeo
// reads it, and building on it reuses nothing stale.
func TestPruneKeepsTagged(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	e := newEnv(t)
	ctxDir := t.TempDir()
	res, err := e.build(t, ctxDir, "FROM busybox:test\nRUN head -c 100000 /dev/urandom > /blob\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Tag("kept:1", res.Image.Manifest); err != nil {
		t.Fatal(err)
	}
	// An untagged build whose layers only the cache keeps.
	if _, err := e.build(t, ctxDir, "FROM busybox:test\nRUN head -c 100000 /dev/urandom > /other\n", nil); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []cache.PruneOptions{{KeepStorage: 1}, {All: true}} {
		rep, err := e.st.Prune(context.Background(), opts)
		if err != nil {
			t.Fatalf("prune %+v: %v", opts, err)
		}
		t.Logf("prune %+v: %+v", opts, rep)
		img, err := e.store.Image(res.Image.Manifest.Digest)
		if err != nil {
			t.Fatalf("tagged image gone after prune %+v: %v", opts, err)
		}
		out := filepath.Join(t.TempDir(), "img.tar")
		f, _ := os.Create(out)
		if err := cache.Export(f, img, "kept:1", cache.FormatOCI); err != nil {
			t.Fatalf("export after prune: %v", err)
		}
		f.Close()
		if b, err := exec.Command(skopeo, "inspect", "oci-archive:"+out).CombinedOutput(); err != nil {
			t.Fatalf("skopeo inspect after prune: %v\n%s", err, b)
		}
	}
	// The tagged image still works as a base: its snapshots are rebuilt
	// from blobs where prune removed them.
	rec, err := e.store.Lookup("kept:1")
	if err != nil || !reflect.DeepEqual(rec.Manifest.Digest, res.Image.Manifest.Digest) {
		t.Fatalf("lookup kept:1: %v", err)
	}
	if _, err := e.build(t, ctxDir, "FROM kept:1\nRUN test -s /blob && echo ok > /ok\n", nil); err != nil {
		t.Fatalf("build on the pruned base: %v", err)
	}
}

// TestCacheEpoch: SOURCE_DATE_EPOCH changes what steps produce (clamped
// file times, history times), so a cached result made without it, or
// with another value, must not be reused.
func TestCacheEpoch(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	df := "FROM busybox:test\nRUN echo hi > /hi\nENV A=b\n"
	e1, e2 := time.Unix(1000000000, 0), time.Unix(1100000000, 0)
	idPlain, _ := e.buildRan(t, ctxDir, df, nil)
	id1, steps := e.buildRan(t, ctxDir, df, &buildOpts{epoch: &e1})
	if len(steps) != 1 || id1 == idPlain {
		t.Errorf("first build with SOURCE_DATE_EPOCH ran %v (id %s, plain %s); want the RUN to run and a new ID", steps, id1, idPlain)
	}
	id2, steps := e.buildRan(t, ctxDir, df, &buildOpts{epoch: &e2})
	if len(steps) != 1 || id2 == id1 {
		t.Errorf("build with another SOURCE_DATE_EPOCH ran %v; want the RUN to run and a new ID", steps)
	}
	if id, steps := e.buildRan(t, ctxDir, df, &buildOpts{epoch: &e1}); len(steps) != 0 || id != id1 {
		t.Errorf("rebuild with the first epoch ran %v, id %s; want all cached and id %s", steps, id, id1)
	}
}

// TestCopyReusesUnchangedFiles: rerunning a COPY after one file changed
// hardlinks the unchanged files from the previous result, and the layer
// is exactly the one a fresh store makes.
func TestCopyReusesUnchangedFiles(t *testing.T) {
	ctxDir := t.TempDir()
	files := map[string]string{}
	for i := 0; i < 50; i++ {
		files[fmt.Sprintf("src/d%d/f%d", i%5, i)] = strings.Repeat(fmt.Sprint(i), 100)
	}
	writeFiles(t, ctxDir, files)
	df := "FROM busybox:test\nCOPY --chmod=640 src /src\n"

	e := newEnv(t)
	if _, err := e.build(t, ctxDir, df, nil); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, ctxDir, map[string]string{"src/d1/f1": "changed"})
	time.Sleep(1100 * time.Millisecond) // anything taken from the clock would differ
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	top := res.Config.RootFS.DiffIDs[len(res.Config.RootFS.DiffIDs)-1]
	dir := e.snaps.Dir(snapshot.ID(top.Hex))
	var unchanged, changed syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "src/d2/f2"), &unchanged); err != nil {
		t.Fatal(err)
	}
	syscall.Stat(filepath.Join(dir, "src/d1/f1"), &changed)
	if unchanged.Nlink != 2 || changed.Nlink != 1 {
		t.Errorf("links: unchanged file nlink %d, changed file nlink %d; want 2 and 1", unchanged.Nlink, changed.Nlink)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "src/d1/f1")); string(data) != "changed" {
		t.Errorf("changed file holds %q", data)
	}

	time.Sleep(1100 * time.Millisecond)
	fresh := newEnv(t)
	res2, err := fresh.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	if top2 := res2.Config.RootFS.DiffIDs[len(res2.Config.RootFS.DiffIDs)-1]; top2 != top {
		t.Errorf("COPY layer with reused files %s, from a fresh store %s", top, top2)
	}
}

// TestCacheCompression: compression is chosen when a layer leaves the
// machine, not at commit: a zstd build reuses the step a gzip build ran,
// and its image leaves with a zstd layer where the first leaves with gzip.
func TestCacheCompression(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	df := "FROM busybox:test\nRUN echo hi > /hi\n"
	first, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	var events []executor.Event
	second, err := e.build(t, ctxDir, df, &buildOpts{compression: "zstd", events: &events})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(ev executor.Event) bool {
		return ev.Kind == executor.StepCached && strings.HasPrefix(ev.Name, "RUN")
	}) {
		t.Error("the zstd build ran the RUN step again")
	}
	for _, tc := range []struct {
		res  *executor.Result
		want string
	}{{first, "gzip"}, {second, "zstd"}} {
		img, err := e.store.Outgoing(context.Background(), tc.res.Image.Manifest.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if mt := m.Layers[len(m.Layers)-1].MediaType; !strings.Contains(string(mt), tc.want) {
			t.Errorf("top layer leaves as %s, want %s", mt, tc.want)
		}
	}
}

// TestFromPlatformMismatch: a local base for another platform is not used
// for --platform; without a registry the build says why it stops. (With
// a RUN, the build stops before, for want of an emulator: see
// TestForeignPlatformRefused.)
func TestFromPlatformMismatch(t *testing.T) {
	e := newEnv(t)
	_, err := e.build(t, t.TempDir(), "FROM busybox:test\nENV A=1\n", &buildOpts{platform: v1.Platform{OS: "linux", Architecture: "s390x"}})
	if err == nil || !strings.Contains(err.Error(), "not linux/s390x") {
		t.Errorf("build for linux/s390x on a local %s base: %v, want a platform error", runtime.GOARCH, err)
	}
}

// TestCacheVerify: with VerifyCache, a hit whose step makes another layer
// when run again is reported; a reproducible step is not.
func TestCacheVerify(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	df := "FROM busybox:test\nRUN echo stable > /s\nRUN head -c 16 /dev/urandom > /unstable\n"
	epoch := time.Unix(1600000000, 0)
	if _, err := e.build(t, ctxDir, df, &buildOpts{epoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	var events []executor.Event
	if _, err := e.build(t, ctxDir, df, &buildOpts{epoch: &epoch, verifyCache: true, events: &events}); err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, ev := range events {
		if ev.Kind == executor.BuildWarning && strings.Contains(ev.Line, "cache verify") {
			warned = append(warned, ev.Line)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "/unstable") {
		t.Errorf("cache verify warnings = %q, want one for the date step", warned)
	}
}

// TestCacheRunHistory: a RUN's history names every ARG in scope, so an
// ARG declared without a value, which reaches neither the environment nor
// the command, still gives the step a key of its own; a hit would
// otherwise hand back the text of another build.
func TestCacheRunHistory(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	if _, err := e.build(t, ctxDir, "FROM busybox:test\nRUN true\n", nil); err != nil {
		t.Fatal(err)
	}
	res, err := e.build(t, ctxDir, "FROM busybox:test\nARG UNUSED\nRUN true\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := res.Config.History
	if got, want := h[len(h)-1].CreatedBy, "RUN |1 UNUSED= /bin/sh -c true"; got != want {
		t.Errorf("history after a build without the ARG: %q, want %q", got, want)
	}
}
