package executor_test

import (
	"strings"
	"testing"

	"github.com/builderdev/builder/executor"
)

// TestStagesRunInParallel: independent stages run at once, all of them by
// default (as in BuildKit, whatever the CPU count), and one at a time with
// Jobs 1. It counts RUN steps between their start and done events; each
// sleeps long enough that stages started together must overlap.
func TestStagesRunInParallel(t *testing.T) {
	e := newEnv(t)
	df := func(sleep string) string {
		var b strings.Builder
		for _, name := range []string{"a", "b", "c"} {
			b.WriteString("FROM busybox:test AS " + name + "\nRUN sleep " + sleep + " && echo " + name + " > /" + name + "\n")
		}
		b.WriteString("FROM busybox:test\nCOPY --from=a /a /\nCOPY --from=b /b /\nCOPY --from=c /c /\n")
		return b.String()
	}
	for _, tt := range []struct {
		jobs  int
		sleep string
		want  int
	}{{0, "2", 3}, {1, "0.2", 1}} {
		var events []executor.Event
		if _, err := e.build(t, t.TempDir(), df(tt.sleep), &buildOpts{jobs: tt.jobs, events: &events, noCache: true}); err != nil {
			t.Fatal(err)
		}
		running, most := 0, 0
		for _, ev := range events {
			if !strings.HasPrefix(ev.Name, "RUN ") {
				continue
			}
			switch ev.Kind {
			case executor.StepStarted:
				running++
				most = max(most, running)
			case executor.StepDone:
				running--
			}
		}
		if most != tt.want {
			t.Errorf("Jobs %d: at most %d RUN steps ran at once, want %d", tt.jobs, most, tt.want)
		}
	}
}
