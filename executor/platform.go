package executor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/parser"
)

// binfmtDir is where the kernel lists the interpreters registered for
// foreign binaries (binfmt_misc).
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// qemuNames are the names Debian's qemu-user-static registers its
// emulators under, by GOARCH.
var qemuNames = map[string]string{
	"amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm",
	"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
	"mips64le": "mips64el", "loong64": "loongarch64",
}

// checkRunnable refuses a stage whose RUN steps would execute programs
// of an architecture this machine cannot run, at its first RUN, unless
// an emulator is registered for it: the build would otherwise fail at
// that step with "exec format error", after the steps before it ran.
func checkRunnable(plan *parser.Plan, i int, target v1.Platform) error {
	s := plan.Stages[i]
	var first *parser.Step
	for k := range s.Steps {
		if s.Steps[k].Name == "RUN" {
			first = &s.Steps[k]
			break
		}
	}
	if first == nil {
		return nil
	}
	p, err := stagePlatform(plan, i, target)
	if err != nil {
		return nil // FROM reports it
	}
	why := cannotRun(p)
	if why == "" {
		return nil
	}
	return &parser.Error{Pos: first.Pos, Msg: why}
}

// stagePlatform is the platform a stage's programs are built for: its
// FROM --platform, else its base stage's, else the target's.
func stagePlatform(plan *parser.Plan, i int, target v1.Platform) (v1.Platform, error) {
	for depth := 0; depth <= len(plan.Stages); depth++ {
		s := plan.Stages[i]
		if s.Platform != "" {
			p, err := v1.ParsePlatform(s.Platform)
			if err != nil {
				return v1.Platform{}, err
			}
			return *p, nil
		}
		if s.Base.Kind != parser.BaseStage {
			break
		}
		i = s.Base.Stage
	}
	return target, nil
}

// cannotRun says why this machine cannot run programs for p, or "".
func cannotRun(p v1.Platform) string {
	host := runtime.GOARCH
	if p.OS != "" && p.OS != "linux" {
		return fmt.Sprintf("RUN for %s cannot run here: builder runs Linux programs only", p.String())
	}
	if p.Architecture == host || (host == "amd64" && p.Architecture == "386") {
		return ""
	}
	name, known := qemuNames[p.Architecture]
	if !known {
		return fmt.Sprintf("RUN for %s cannot run on this linux/%s machine, and no emulator is known for it", p.String(), host)
	}
	data, err := os.ReadFile(filepath.Join(binfmtDir, "qemu-"+name))
	switch {
	case err != nil:
		return fmt.Sprintf("RUN for %s cannot run on this linux/%s machine: install an emulator (Debian: apt-get install qemu-user-static, which registers qemu-%s with binfmt_misc), or build for linux/%s", p.String(), host, name, host)
	case !bytes.HasPrefix(data, []byte("enabled")):
		return fmt.Sprintf("RUN for %s: the emulator qemu-%s is registered but disabled (echo 1 > %s)", p.String(), name, filepath.Join(binfmtDir, "qemu-"+name))
	case !bytes.Contains(flagsLine(data), []byte("F")):
		return fmt.Sprintf("RUN for %s: the emulator qemu-%s is registered without the F flag, so it cannot be found inside a RUN step's root; register it with F (Debian's qemu-user-static does)", p.String(), name)
	}
	return ""
}

// flagsLine is the "flags: …" line of a binfmt_misc entry.
func flagsLine(entry []byte) []byte {
	for _, line := range bytes.Split(entry, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("flags:")); ok {
			return rest
		}
	}
	return nil
}
