package executor_test

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestPlatformArgsCrossBuild builds for another platform than this
// machine's, as `--platform linux/arm64` does on amd64: the BUILD* args
// are the machine's and the TARGET* args the target's, in FROM lines and
// in stages, where they are seen only once an ARG declares them. Nothing
// of the target's architecture runs: the one RUN is in a stage FROM
// --platform=$BUILDPLATFORM, as cross-compiling Dockerfiles do, and the
// target stage is FROM scratch.
func TestPlatformArgsCrossBuild(t *testing.T) {
	e := newEnv(t)
	host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	target := v1.Platform{OS: "linux", Architecture: "arm64"}
	if host.Architecture == "arm64" {
		target.Architecture = "amd64"
	}
	hostArch, targetArch := host.Architecture, target.Architecture
	df := `FROM --platform=$BUILDPLATFORM busybox:test AS build
ENV BEFORE=${BUILDARCH:-undeclared}
ARG BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT
RUN test "$BUILDARCH $TARGETARCH" = "` + hostArch + ` ` + targetArch + `"
ENV BUILD="$BUILDPLATFORM $BUILDOS $BUILDARCH [$BUILDVARIANT]" TARGET="$TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT]"

FROM scratch
ARG TARGETARCH BUILDARCH
ENV ARCHS="build $BUILDARCH target $TARGETARCH"
`
	tests := []struct {
		target string
		arch   string   // the image config's
		env    []string // the image's ENV after PATH
		run    string   // the RUN's history text, when the stage has one
	}{
		{"build", hostArch, []string{
			"BEFORE=undeclared",
			"BUILD=linux/" + hostArch + " linux " + hostArch + " []",
			"TARGET=linux/" + targetArch + " linux " + targetArch + " []",
		}, "RUN |8 BUILDPLATFORM=linux/" + hostArch + " BUILDOS=linux BUILDARCH=" + hostArch + " BUILDVARIANT= " +
			"TARGETPLATFORM=linux/" + targetArch + " TARGETOS=linux TARGETARCH=" + targetArch + " TARGETVARIANT= " +
			`/bin/sh -c test "$BUILDARCH $TARGETARCH" = "` + hostArch + " " + targetArch + `"`},
		{"", targetArch, []string{"ARCHS=build " + hostArch + " target " + targetArch}, ""},
	}
	for _, tt := range tests {
		t.Run("target "+tt.target, func(t *testing.T) {
			// As for --platform: the request gives the parser both
			// platforms and the executor the target, from one value.
			res, err := e.build(t, t.TempDir(), df, &buildOpts{target: tt.target, platform: target})
			if err != nil {
				t.Fatal(err)
			}
			cfg := res.Config
			if cfg.Architecture != tt.arch {
				t.Errorf("image architecture %s, want %s", cfg.Architecture, tt.arch)
			}
			if env := cfg.Config.Env; len(env) == 0 || !slices.Equal(env[1:], tt.env) {
				t.Errorf("ENV %q, want PATH then %q", env, tt.env)
			}
			if tt.run == "" {
				return
			}
			var runs []string
			for _, h := range cfg.History {
				if strings.HasPrefix(h.CreatedBy, "RUN ") {
					runs = append(runs, h.CreatedBy)
				}
			}
			if len(runs) != 1 || runs[0] != tt.run {
				t.Errorf("RUN history %q, want %q", runs, tt.run)
			}
		})
	}
}
