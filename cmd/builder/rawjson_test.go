package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRawJSON: every event is one line of JSON that reads back to what
// happened, in order.
func TestRawJSON(t *testing.T) {
	var b bytes.Buffer
	r := newRenderer("rawjson", &b, testEnv(), false)
	events := singleStageEvents()
	for _, e := range events {
		r.Report(e)
	}
	r.Close()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), b.String())
	}
	for i, line := range lines {
		var got rawEvent
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		e := events[i]
		if got.Kind != eventKinds[e.Kind] || got.ID != e.ID || got.Line != e.Line || got.Current != e.Current ||
			got.Time != e.Time.UTC().Format("2006-01-02T15:04:05.000000000Z") || (e.Err != nil) != (got.Error != "") {
			t.Errorf("line %d is %s for event %+v", i+1, line, e)
		}
	}
	if want := `{"kind":"failed","id":4,"stage":"0","step":4,"steps":4,"name":"RUN ./test.sh","duration":1.1,` +
		`"error":"Dockerfile:5: RUN ./test.sh exited with code 1","time":"2025-01-01T00:00:03.100000000Z"}`; lines[len(lines)-1] != want {
		t.Errorf("last line\n%s\nwant\n%s", lines[len(lines)-1], want)
	}
}

func TestFullName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app:latest", "docker.io/library/app:latest"},
		{"user/app:1", "docker.io/user/app:1"},
		{"127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"},
		{"ghcr.io/o/app:v2", "ghcr.io/o/app:v2"},
	}
	for _, tt := range tests {
		if got := fullName(tt.in); got != tt.want {
			t.Errorf("fullName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
