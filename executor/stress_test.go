package executor_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/builderdev/builder/internal/testutil"
)

const (
	stressRounds = 5
	// stressEpoch makes the step every build shares give the same layer in
	// every process: the processes race to commit one blob and snapshot.
	stressEpoch = "SOURCE_DATE_EPOCH=1700000000"
)

// stressBuild is one of the builds each round of TestBuildsBesidePrune
// runs at once.
type stressBuild struct {
	tag string // "" for an untagged build: only the cache holds its layers
	df  string // %d is the round
}

var stressBuilds = []stressBuild{
	// Retags a:latest every round, while the next build reads it.
	{"a:latest", "FROM busybox:test\nRUN sleep 0.3; echo shared > /shared\nRUN echo r%d > /a\nCOPY f /f\n"},
	// A new tag every round, with a layer of new bytes.
	{"b:r%d", "FROM busybox:test\nRUN sleep 0.3; echo shared > /shared\nRUN head -c 1000000 /dev/urandom > /b; echo r%d\n"},
	// Builds on a:latest, whichever of the last two rounds' it finds, and
	// copies from a stage of its own.
	{"c:latest", "FROM busybox:test AS s\nRUN echo r%d > /s\nFROM a:latest\nCOPY --from=s /s /s\nRUN cat /a /s > /both\n"},
	{"", "FROM busybox:test\nRUN sleep 0.3; echo shared > /shared\nRUN head -c 500000 /dev/urandom > /d; echo r%d\n"},
}

// pruneLoop runs builder prune processes one after the other, alternately
// `prune` and `prune --all`, until stopped, and counts those that ended.
type pruneLoop struct {
	mu       sync.Mutex
	done     int
	removed  [3]int // cache entries, blobs, snapshots
	failures []string
	stop     chan struct{}
	stopped  chan struct{}
}

func startPruneLoop(bin, root string) *pruneLoop {
	l := &pruneLoop{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(l.stopped)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			args := []string{"prune"}
			if i%2 == 1 {
				args = append(args, "--all")
			}
			// Not runCLI: this goroutine must not end the test.
			cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
			cmd.Env = append(os.Environ(), "BUILDER_ROOT=")
			out, err := cmd.CombinedOutput()
			l.mu.Lock()
			l.done++
			var n [3]int
			if _, serr := fmt.Sscanf(string(out), "Deleted %d cache entries, %d blobs, %d snapshots", &n[0], &n[1], &n[2]); err != nil || serr != nil {
				l.failures = append(l.failures, fmt.Sprintf("builder %s: %v\n%s", strings.Join(args, " "), err, out))
			}
			for i := range n {
				l.removed[i] += n[i]
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *pruneLoop) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

// waitPast waits until more than n prunes have ended.
func (l *pruneLoop) waitPast(t *testing.T, n int) {
	t.Helper()
	// A hang guard, not a timing assertion.
	for deadline := time.Now().Add(60 * time.Second); l.count() <= n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no prune ended in 60 s after %d", n)
		}
	}
}

// TestBuildsBesidePrune runs four builder processes at once on one store,
// five rounds, with a loop of prune processes beside them and a check
// process in each round; TestConcurrentProcesses runs one round and
// prunes after it. The builds share a step (racing to commit one layer),
// retag an image another build of the next round is based on, tag new
// images and leave untagged ones for prune to remove. No build, prune or
// check may fail: the store's build lock makes a prune wait for running
// builds and builds wait for a running prune, and everything else is
// written by rename, so any failure is a bug. Between rounds the test
// waits for a prune to end, so that prunes land between the rounds as
// well as waiting during them. At the end, check must find nothing, every
// tagged image must be complete (skopeo copies it, reading every blob),
// and an image built from the last c:latest must see its files.
func TestBuildsBesidePrune(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	testutil.RequireRoot(t)
	bin := builderBinary(t)
	root := cliStore(t, bin)
	// a:latest exists before round 0, for c:latest to build on.
	first := writeContext(t, fmt.Sprintf(stressBuilds[0].df, 0), map[string]string{"f": "round 0\n"})
	mustCLI(t, bin, root, "build", "-q", "--build-arg", stressEpoch, "-t", "a:latest", first)

	prunes := startPruneLoop(bin, root)
	defer func() {
		select {
		case <-prunes.stop:
		default:
			close(prunes.stop)
		}
		<-prunes.stopped
	}()
	tags := map[string]bool{"busybox:test": true}
	for r := range stressRounds {
		var procs []*builderProc
		for _, b := range stressBuilds {
			ctx := writeContext(t, fmt.Sprintf(b.df, r), map[string]string{"f": fmt.Sprintf("round %d\n", r)})
			args := []string{"build", "-q", "--build-arg", stressEpoch, ctx}
			if b.tag != "" {
				tag := strings.ReplaceAll(b.tag, "%d", fmt.Sprint(r))
				args = append(args, "-t", tag)
				tags[tag] = true
			}
			procs = append(procs, startBuilder(t, bin, root, args...))
		}
		check := startBuilder(t, bin, root, "check")
		for _, p := range procs {
			if code := p.wait(); code != 0 {
				t.Errorf("round %d: builder %s: exit %d\n%s", r, strings.Join(p.cmd.Args[3:], " "), code, p.stderr.String())
			}
		}
		if code := check.wait(); code != 0 || check.stdout.String() != "" {
			t.Errorf("round %d: builder check beside the builds: exit %d\n%s%s", r, code, check.stdout.String(), check.stderr.String())
		}
		prunes.waitPast(t, prunes.count())
		if t.Failed() {
			t.FailNow()
		}
	}
	close(prunes.stop)
	<-prunes.stopped
	t.Logf("%d builds in %d rounds; %d prunes removed %d cache entries, %d blobs, %d snapshots",
		stressRounds*len(stressBuilds), stressRounds, prunes.count(), prunes.removed[0], prunes.removed[1], prunes.removed[2])
	for _, f := range prunes.failures {
		t.Error(f)
	}
	// Prunes that found nothing to remove would prove nothing.
	for i, what := range []string{"cache entries", "blobs", "snapshots"} {
		if prunes.removed[i] == 0 {
			t.Errorf("the prunes removed no %s", what)
		}
	}

	if c := checkStore(t, bin, root); len(c.swept)+len(c.repaired) > 0 {
		t.Errorf("builder check found %q, then --repair %q; want nothing", c.swept, c.repaired)
	}
	for tag := range tags {
		skopeoCopyOut(t, skopeo, bin, root, tag)
	}
	ctx := writeContext(t, "FROM c:latest\nRUN cat /both /f /shared\n", nil)
	if r := runCLI(t, bin, root, "build", "--progress", "plain", ctx); r.code != 0 {
		t.Errorf("building on c:latest: exit %d\n%s", r.code, r.stderr)
	} else if want := fmt.Sprintf("r%d\n", stressRounds-1); !strings.Contains(r.stderr, want) {
		t.Errorf("building on c:latest: the step's output lacks %q:\n%s", want, r.stderr)
	}
}
