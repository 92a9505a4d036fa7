package executor_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builderdev/builder/internal/testutil"
)

// killRounds is how many builds TestBuildKilled kills.
const killRounds = 30

// killDockerfile pulls its base from the test's registry, runs a step that
// writes 64 MB of incompressible bytes (the same bytes every time, from
// the base's /seed, so the image ID does not change), and copies a file.
// The step prints a marker as it starts and as it ends, so the output
// tells a kill that landed while the base was unpacked, in the command,
// or while its layer was written.
const killDockerfile = `FROM %s
RUN echo run-begin && sleep 0.3 && for i in 1 2 3 4; do cat /seed; done > /data && echo run-end
COPY file /file
`

// killWorkload is what every round of TestBuildKilled builds.
type killWorkload struct {
	bin, ctxDir string
}

// newKillWorkload pushes the base image to a registry of the test's own and
// writes the context.
func newKillWorkload(t *testing.T) *killWorkload {
	t.Helper()
	ref := testutil.StartRegistry(t) + "/kill/base:1"
	// Incompressible bytes from a fixed seed, so that the step's layer
	// costs a full compression, and always the same: /seed, 16 MB, which
	// the step reads, and a 24 MB layer the build only pulls and unpacks,
	// which makes those phases long enough for kills to land in.
	img := testutil.BusyboxImage(t)
	for _, l := range []struct {
		name string
		size int
	}{{"seed", 16 << 20}, {"pad", 24 << 20}} {
		data := make([]byte, l.size)
		rand.NewChaCha8([32]byte{13, byte(l.size >> 20)}).Read(data)
		raw := tarOf(t, map[string]string{l.name: string(data)})
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(raw)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   struct{ v1.Layer }{layer},
			History: v1.History{CreatedBy: l.name, Created: v1.Time{Time: time.Unix(0, 0).UTC()}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	testutil.PushImage(t, ref, img)
	file := strings.Repeat("copied by the kill test\n", 1<<14)
	return &killWorkload{
		bin:    builderBinary(t),
		ctxDir: writeContext(t, strings.Replace(killDockerfile, "%s", ref, 1), map[string]string{"file": file}),
	}
}

// args are the build's arguments: plain progress, so the output tells how
// far the build got, and a fixed epoch, so the image ID is reproducible.
func (w *killWorkload) args(progress string) []string {
	return []string{"build", "--progress", progress, "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-t", "killed:1", w.ctxDir}
}

// killPhase says how far a build got from its plain output: starting
// (nothing yet), pulling, unpacking (the RUN step started, its command
// not yet), running, committing (the command ended, its layer is being
// written), copying, image (every step done: config, manifest, tag) or
// done (the ID printed).
func killPhase(stderr, stdout string) string {
	if strings.TrimSpace(stdout) != "" {
		return "done"
	}
	ids := map[string]string{} // step label "#N" → instruction
	state := map[string]string{}
	for _, line := range strings.Split(stderr, "\n") {
		label, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(label, "#") {
			continue
		}
		if _, seen := ids[label]; !seen {
			// The header: "[2/3] RUN echo …".
			words := strings.Fields(rest[strings.Index(rest, "]")+1:])
			if len(words) == 0 {
				continue // cut short by the kill
			}
			ids[label] = words[0]
			state[words[0]] = "started"
			continue
		}
		switch kind := ids[label]; {
		case strings.HasPrefix(rest, "DONE "):
			state[kind] = "done"
		case strings.HasSuffix(rest, " run-begin"):
			state[kind] = "running"
		case strings.HasSuffix(rest, " run-end"):
			state[kind] = "committing"
		}
	}
	switch {
	case state["FROM"] == "":
		return "starting"
	case state["FROM"] != "done":
		return "pulling"
	case state["RUN"] == "" || state["RUN"] == "started":
		return "unpacking"
	case state["RUN"] != "done":
		return state["RUN"]
	case state["COPY"] != "done":
		return "copying"
	}
	return "image"
}

// TestBuildKilled SIGKILLs builder processes at random moments of a build
// that pulls its base, runs a step and commits its layer, copies a file and
// tags the image. Each round builds in a fresh store, so that every round
// goes through the phases at the moments the reference builds did (in a
// store kept across rounds, blobs left by an earlier round would skip the
// pull or the step and shift the phases), and a failing round replays from
// the seed alone. After each kill no process of the build may be left and
// nothing mounted; `builder check` must pass (or pass after `check
// --repair`: what it found is logged); and a new build must give the
// reference image ID. BUILDER_KILL_SEED replays a run.
func TestBuildKilled(t *testing.T) {
	testutil.RequireRoot(t)
	w := newKillWorkload(t)
	total, wantID := w.reference(t)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BUILDER_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("BUILDER_KILL_SEED=%q: %v", s, err)
		}
	}
	t.Logf("kill moments from seed %d (BUILDER_KILL_SEED=%d replays them)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	phases := map[string]int{}
	findings := map[string]int{}
	below := map[string]int{} // processes the builder had started, by phase
	for i := range killRounds {
		// One moment in each of killRounds equal slices of [0, T]: random,
		// yet every phase longer than two slices is hit at least once.
		at := time.Duration((float64(i) + rng.Float64()) * float64(total) / killRounds)
		phase, found, procs := killRound(t, w, wantID, at)
		phases[phase]++
		below[phase] += procs
		for _, f := range found.swept {
			findings[phase+": "+normalizeFinding(f)]++
		}
		for _, f := range found.repaired {
			findings[phase+": needed --repair: "+normalizeFinding(f)]++
			t.Logf("kill at %v (%s): check found a problem only --repair removed: %s", at, phase, f)
		}
		if t.Failed() {
			t.Fatalf("round %d (kill at %v, in %s) failed; BUILDER_KILL_SEED=%d replays it", i, at, phase, seed)
		}
	}
	t.Logf("kills by phase: %v", phases)
	t.Logf("processes below the killed builders, by phase: %v", below)
	t.Logf("what check found, by phase: %v", findings)
	// A build pulls its base lazily: FROM fetches the manifest and config
	// ("pulling"), and the layers are downloaded as they are unpacked for
	// the first step ("unpacking"), so those two are one group.
	for _, want := range [][]string{{"pulling", "unpacking"}, {"running"}, {"committing", "copying", "image"}} {
		n := 0
		for _, p := range want {
			n += phases[p]
		}
		if n == 0 {
			t.Errorf("no kill landed in %v (kills by phase %v): the phases are too short for the test", want, phases)
		}
	}
}

// reference builds the workload twice, uninterrupted, each in a fresh
// store, and returns the mean duration and the image ID, which both
// builds must give.
func (w *killWorkload) reference(t *testing.T) (time.Duration, string) {
	t.Helper()
	var total time.Duration
	var id string
	for i := range 2 {
		p := startBuilder(t, w.bin, t.TempDir(), w.args("plain")...)
		if code := p.wait(); code != 0 {
			t.Fatalf("reference build: exit %d\n%s", code, p.stderr.String())
		}
		d := time.Since(p.start)
		total += d
		got := strings.TrimSpace(p.stdout.String())
		if i > 0 && got != id {
			t.Fatalf("reference builds gave %s and %s: the image ID is not reproducible", id, got)
		}
		id = got
		t.Logf("reference build %d: %s in %v; phases:%s", i, id, d.Round(time.Millisecond), phaseTimes(p))
	}
	return total / 2, id
}

// killRound builds in a fresh store, kills the builder after at, and
// checks what it left. It returns the phase the kill landed in, what
// check found and how many processes the builder had started.
func killRound(t *testing.T, w *killWorkload, wantID string, at time.Duration) (string, storeCheck, int) {
	t.Helper()
	root, err := os.MkdirTemp("", "builder-kill-")
	if err != nil {
		t.Fatal(err)
	}
	// A store holds about 200 MB: remove each now rather than at the end.
	defer os.RemoveAll(root)
	p := startBuilder(t, w.bin, root, w.args("plain")...)
	var below map[procID]string
	select {
	case <-p.done:
	case <-time.After(time.Until(p.start.Add(at))):
		below = killTree(t, p)
	}
	phase := killPhase(p.stderr.String(), p.stdout.String())
	defer func() {
		if t.Failed() {
			t.Logf("the killed build's output:\n%s", p.stderr.String())
		}
	}()
	if left := survivors(below); len(left) > 0 {
		t.Errorf("kill at %v (%s): processes outlive the builder: %q", at, phase, left)
	}
	if m := mountsBelow(t, root); len(m) > 0 {
		t.Errorf("kill at %v (%s): mounts left under the store: %q", at, phase, m)
	}
	found := checkStore(t, w.bin, root)
	r := runCLI(t, w.bin, root, w.args("quiet")...)
	if got := strings.TrimSpace(r.stdout); r.code != 0 || got != wantID {
		t.Errorf("kill at %v (%s): the next build gave %q (exit %d), want %s\n%s", at, phase, got, r.code, wantID, r.stderr)
	}
	if left := tmpEntries(t, root); len(left) > 0 {
		t.Errorf("kill at %v (%s): tmp/ holds %q after the next build", at, phase, left)
	}
	return phase, found, len(below)
}

// normalizeFinding drops the digests and paths from a line of check's
// output, so that findings of one kind count together.
func normalizeFinding(f string) string {
	return hexRun.ReplaceAllString(f, "…")
}

var hexRun = regexp.MustCompile(`[0-9a-f]{12,}|/[^ :]*`)

// phaseTimes lists when the reference build's output entered each phase.
func phaseTimes(p *builderProc) string {
	var b strings.Builder
	last := ""
	var seen strings.Builder
	for _, l := range p.stderr.Lines() {
		seen.WriteString(l.text + "\n")
		if ph := killPhase(seen.String(), ""); ph != last {
			b.WriteString(" " + ph + "@" + l.at.Round(time.Millisecond).String())
			last = ph
		}
	}
	return b.String()
}
