package main

import (
	"encoding/json"
	"io"
	"sync"

	"github.com/builderdev/builder/executor"
)

// rawJSONRenderer writes each event as one line of JSON, for tools
// (--progress=rawjson). Field names are lower case; zero fields are left
// out; duration is in seconds, time in RFC 3339 with nanoseconds.
type rawJSONRenderer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

type rawEvent struct {
	Kind     string  `json:"kind"`
	ID       int     `json:"id,omitempty"`
	Stage    string  `json:"stage,omitempty"`
	Step     int     `json:"step,omitempty"`
	Steps    int     `json:"steps,omitempty"`
	Name     string  `json:"name,omitempty"`
	Label    string  `json:"label,omitempty"`
	Current  int64   `json:"current,omitempty"`
	Total    int64   `json:"total,omitempty"`
	Line     string  `json:"line,omitempty"`
	Stream   int     `json:"stream,omitempty"`
	Duration float64 `json:"duration,omitempty"`
	Error    string  `json:"error,omitempty"`
	Time     string  `json:"time"`
}

var eventKinds = map[executor.EventKind]string{
	executor.StepStarted:  "started",
	executor.StepCached:   "cached",
	executor.StepProgress: "progress",
	executor.StepLog:      "log",
	executor.StepDone:     "done",
	executor.StepFailed:   "failed",
	executor.BuildWarning: "warning",
}

func newRawJSONRenderer(w io.Writer) *rawJSONRenderer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &rawJSONRenderer{enc: enc}
}

func (r *rawJSONRenderer) Report(e executor.Event) {
	ev := rawEvent{Kind: eventKinds[e.Kind], ID: e.ID, Stage: e.Stage, Step: e.Step, Steps: e.Steps, Name: e.Name,
		Label: e.Label, Current: e.Current, Total: e.Total, Line: e.Line, Stream: e.Stream,
		Duration: e.Duration.Seconds(), Time: e.Time.UTC().Format("2006-01-02T15:04:05.000000000Z")}
	if e.Err != nil {
		ev.Error = e.Err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enc.Encode(ev) // one line: Encode ends each value with a newline
}

func (r *rawJSONRenderer) Close() {}
