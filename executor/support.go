package executor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/builderdev/builder/parser"
)

// checkPlan refuses, before any step runs, every place in the stages the
// target needs that this builder cannot do or that the request does not
// allow, all of them at once: a Dockerfile that uses three things we lack
// must not take three builds (and the steps before each) to find out.
// Steps are expanded without their stage's environment here; a step whose
// options come from a variable is checked again when it runs, by the same
// rules (unsupported).
func checkPlan(plan *parser.Plan, opts *Options) error {
	var errs []error
	for _, i := range plan.Needed() {
		errs = append(errs, checkSteps(plan.Stages[i].Steps, opts)...)
		if err := checkRunnable(plan, i, opts.Platform); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkSteps applies unsupported to steps, one *parser.Error per finding.
func checkSteps(steps []parser.Step, opts *Options) []error {
	var errs []error
	for _, step := range steps {
		ins, err := step.Expand(nil)
		if err != nil {
			// Reported when the step runs, with its environment: "${X:?}"
			// fails here for want of one.
			continue
		}
		for _, msg := range unsupported(ins, opts) {
			errs = append(errs, &parser.Error{Pos: step.Pos, Msg: msg})
		}
	}
	return errs
}

// checkStep is unsupported for a step about to run: its first finding.
func checkStep(ins parser.Instruction, opts *Options) error {
	if msgs := unsupported(ins, opts); len(msgs) > 0 {
		return errors.New(msgs[0])
	}
	return nil
}

// unsupported lists what an instruction asks for that the build cannot
// give it, each as the rest of a "Dockerfile:N: " line that says what to
// do.
func unsupported(ins parser.Instruction, opts *Options) []string {
	switch ins := ins.(type) {
	case *parser.Run:
		return unsupportedRun(ins, opts)
	case *parser.Copy:
		return unsupportedCopy(ins)
	}
	return nil
}

func unsupportedRun(r *parser.Run, opts *Options) []string {
	var out []string
	if r.Network == NetworkHost && !opts.AllowNetworkHost && opts.Network != NetworkHost {
		out = append(out, "RUN --network=host is not allowed: it would give the step the host's network, loopback services included; pass --allow network.host to permit it")
	}
	if r.Security == "insecure" {
		out = append(out, "RUN --security=insecure is not supported: builder grants no privileged steps")
	}
	if len(r.Devices) > 0 {
		out = append(out, fmt.Sprintf("RUN --device=%s is not supported: builder gives RUN steps no host devices", r.Devices[0]))
	}
	for _, m := range r.Mounts {
		switch m.Type {
		case "ssh":
			id := m.ID
			if id == "" {
				id = "default"
			}
			if _, ok := opts.SSH[id]; !ok && id == "default" {
				out = append(out, "RUN --mount=type=ssh needs --ssh (see builder build --help)")
			} else if !ok {
				out = append(out, fmt.Sprintf("RUN --mount=type=ssh,id=%s needs --ssh %s=SOCKET (see builder build --help)", id, id))
			}
		case "secret":
			id := secretID(m)
			if _, ok := opts.Secrets[id]; !ok && m.Required {
				out = append(out, fmt.Sprintf("RUN --mount=type=secret,id=%s,required needs --secret id=%s (see builder build --help)", id, id))
			}
		}
	}
	return out
}

func unsupportedCopy(c *parser.Copy) []string {
	var out []string
	urls, gits := 0, 0
	for _, src := range c.Sources {
		switch {
		case c.Add && isHTTP(src):
			urls++
		case c.Add && isGit(src):
			gits++
		}
	}
	switch {
	case gits > 0 && len(c.Sources) > 1:
		out = append(out, "ADD of a git repository takes it as its one source: give it its own ADD")
	}
	if c.Checksum != "" {
		switch {
		case gits == 1 && len(c.Sources) == 1:
			if len(c.Checksum) < 7 || !isHex(c.Checksum) {
				out = append(out, fmt.Sprintf("ADD --checksum=%s of a git repository: want a commit id", c.Checksum))
			}
		case urls == 0:
			out = append(out, "ADD --checksum needs a URL source (it checks a download)")
		case len(c.Sources) > 1:
			out = append(out, "ADD --checksum takes one URL: give each download its own ADD")
		case !validChecksum(c.Checksum):
			out = append(out, fmt.Sprintf("ADD --checksum=%s: want sha256: and 64 hex digits", c.Checksum))
		}
	}
	return out
}

// validChecksum reports whether s is an ADD --checksum we can check.
func validChecksum(s string) bool {
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	for _, r := range hexPart {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
