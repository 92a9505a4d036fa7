package executor

import (
	"time"

	"github.com/builderdev/builder/parser"
)

// EventKind says what happened to a step.
type EventKind int

const (
	StepStarted  EventKind = iota // the step began to run (or to resolve, for FROM)
	StepCached                    // the step's result came from the cache; nothing ran
	StepProgress                  // bytes moved: Current of Total (Total 0 if unknown)
	StepLog                       // a line of RUN output, or a message from the builder
	StepDone                      // the step finished; Duration is set
	StepFailed                    // the step failed; Err is set
	BuildWarning                  // a warning not tied to one step (ID 0)
	LayersMerged                  // layers of the image were merged (ID 0); Merge says which
)

// MergeReport says which layers a build or a flatten merged.
type MergeReport struct {
	Before, After int    // layers before and after
	Limit         int    // the --max-layers in effect
	Squash        Squash // --squash or --squash-all, if asked
	// Steps holds, for each merged layer, the first and last history
	// entry (numbered from 1 at the bottom, before the merge) it holds.
	Steps [][2]int
}

// Event is one thing that happened during a build.
type Event struct {
	Kind EventKind
	// ID numbers the step within the build, from 1, like BuildKit's "#3";
	// every event of a step carries the same ID.
	ID int
	// Stage is the stage name, or its index as a string when unnamed.
	Stage string
	// Step and Steps place the step in its stage: [Step/Steps]; 0 for FROM.
	Step, Steps int
	// Name is the step as shown to users: "FROM alpine", "COPY . /app".
	Name string
	// Label names what Current and Total count ("sha256:ab12…", "layer").
	Label          string
	Current, Total int64
	// Line is a line of output (StepLog), without its newline; Stream is
	// 1 for stdout, 2 for stderr, 0 for a builder message.
	Line     string
	Stream   int
	Duration time.Duration
	Err      error
	Time     time.Time
	Merge    *MergeReport // LayersMerged
}

// Reporter receives events. Report may be called from several goroutines
// at once and must not block for long.
type Reporter interface {
	Report(Event)
}

// ReporterFunc adapts a function to a Reporter.
type ReporterFunc func(Event)

func (f ReporterFunc) Report(e Event) { f(e) }

// Discard is a Reporter that drops every event.
var Discard Reporter = ReporterFunc(func(Event) {})

// StepCount is how many steps with an ID a build of p reports: the FROM
// and the filesystem steps of every stage the target needs. A base's
// ONBUILD triggers add to it once the base is known.
func StepCount(p *parser.Plan) int {
	n := 0
	for _, i := range p.Needed() {
		n += 1 + countFS(p.Stages[i].Steps)
	}
	return n
}
