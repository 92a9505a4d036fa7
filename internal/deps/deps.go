//go:build deps

// Package deps pins the modules the project is being built with while its
// packages are written in parallel; `go mod tidy` keeps what is imported
// here. Remove an import once real code uses the module.
package deps

import (
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/klauspost/pgzip"
	_ "github.com/moby/buildkit/frontend/dockerfile/instructions"
	_ "github.com/moby/buildkit/frontend/dockerfile/parser"
	_ "github.com/moby/buildkit/frontend/dockerfile/shell"
	_ "github.com/moby/patternmatcher/ignorefile"
	_ "github.com/moby/sys/mountinfo"
	_ "github.com/moby/sys/user"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/pflag"
	_ "golang.org/x/sync/errgroup"
)
