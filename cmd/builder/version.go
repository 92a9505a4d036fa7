package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

var cmdVersion = &command{
	Name:    "version",
	Args:    "",
	Short:   "Show the builder version",
	Long:    `Version prints the builder's version, the commit it was built from, and the Go version and platform.`,
	Example: `builder version`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 0, ""); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, versionLine())
			return nil
		}
	},
}

// version and commit are set by the Makefile's build (-ldflags -X), from
// git describe and git rev-parse; a plain go build or go install leaves
// them empty and the module's build info says what it knows.
var version, commit string

func versionLine() string {
	version, commit := version, commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if bi, ok := debug.ReadBuildInfo(); ok && (version == "" || commit == "") {
		if v := bi.Main.Version; v != "" && version == "" {
			version = v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && commit == "" {
				commit = s.Value[:12]
				for _, m := range bi.Settings {
					if m.Key == "vcs.modified" && m.Value == "true" {
						commit += "-dirty"
					}
				}
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	line := fmt.Sprintf("builder %s %s %s/%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if commit != "" {
		line += " commit " + commit
	}
	return line
}
