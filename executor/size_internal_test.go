package executor

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/parser"
)

// TestConfigSizeCap applies metadata steps to a stage until its config
// is too large. The parser caps each instruction, so only steps that
// accumulate reach these limits: many LABELs, an environment inherited
// from a base image, a long history.
func TestConfigSizeCap(t *testing.T) {
	mib := strings.Repeat("v", 1<<20)
	tests := []struct {
		name  string
		base  func(st *imageState)
		steps func(i int) parser.Instruction
		fails int // the step that fails, counted from 1; 0: none of 100
		want  string
	}{
		{
			// Each LABEL adds its value to the labels and to its history
			// text: 2 MiB a step.
			name: "labels of 1 MiB",
			steps: func(i int) parser.Instruction {
				return &parser.Label{Pairs: []parser.KV{{Key: fmt.Sprint("l", i), Value: mib}}}
			},
			fails: 32,
			want:  "the image config (environment, labels and history) would be larger than 64 MiB",
		},
		{
			name: "a base image's environment of 9 MiB",
			base: func(st *imageState) {
				for i := range 9 {
					st.cfg.Config.Env = append(st.cfg.Config.Env, fmt.Sprintf("E%d=%s", i, mib))
				}
			},
			steps: func(i int) parser.Instruction { return &parser.StopSignal{Signal: "SIGTERM"} },
			fails: 1,
			want:  "the environment (ARG and ENV values, the base image's included) would be larger than 8 MiB",
		},
		{
			name: "a base image's history of 64 MiB",
			base: func(st *imageState) {
				for range 64 {
					st.cfg.History = append(st.cfg.History, v1.History{CreatedBy: mib})
				}
			},
			steps: func(i int) parser.Instruction { return &parser.User{User: "u"} },
			fails: 1,
			want:  "the image config (environment, labels and history) would be larger than 64 MiB",
		},
		{
			name:  "ENV replacing one value",
			steps: func(i int) parser.Instruction { return &parser.Env{Pairs: []parser.KV{{Key: "A", Value: mib}}} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &imageState{}
			if tt.base != nil {
				tt.base(st)
			}
			for i := 1; i <= 100; i++ {
				text, err := applyMeta(st, tt.steps(i))
				if err != nil {
					if i != tt.fails || err.Error() != tt.want {
						t.Fatalf("step %d: %v; want step %d to fail with %q", i, err, tt.fails, tt.want)
					}
					return
				}
				// As metaStep records it.
				st.cfg.History = append(st.cfg.History, v1.History{CreatedBy: text})
				// A history short of text keeps the ENV case to what
				// it tests, the environment.
				if tt.fails == 0 {
					st.cfg.History = nil
				}
			}
			if tt.fails != 0 {
				t.Fatalf("100 steps applied, want step %d to fail with %q", tt.fails, tt.want)
			}
		})
	}
}

// TestExposeBound: one EXPOSE may name every port of every protocol, not
// more; a word "1-65535" names 65,535 of them.
func TestExposeBound(t *testing.T) {
	all := []string{"1-65535", "1-65535/udp", "1-65535/sctp"}
	if ports, err := parsePorts(all); err != nil || len(ports) != 3*65535 {
		t.Fatalf("parsePorts of every port: %d ports, %v", len(ports), err)
	}
	const want = "EXPOSE names more than 196608 ports"
	if _, err := parsePorts(append(all, "0-65535", "80")); err == nil || err.Error() != want {
		t.Fatalf("parsePorts of too many ports: %v, want %q", err, want)
	}
}
