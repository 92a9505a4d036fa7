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
	what := copyName(c)
	var out []string
	if len(c.Inline) > 0 && len(c.Sources) > 0 {
		out = append(out, what+" of heredocs and files together is not supported yet: copy them in two steps")
	}
	if c.Checksum != "" {
		out = append(out, "ADD --checksum is not supported yet")
	}
	for _, s := range c.Sources {
		if c.Add && isURL(s) {
			out = append(out, fmt.Sprintf("ADD of a URL (%s) is not supported yet", s))
		}
	}
	return out
}

// isURL reports whether an ADD source is remote, as BuildKit tells them
// apart: a URL, or git's scp-like syntax.
func isURL(s string) bool {
	for _, p := range []string{"http://", "https://", "git://", "git@", "ssh://"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
