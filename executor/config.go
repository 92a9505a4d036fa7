package executor

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/parser"
)

// applyMeta applies an instruction that only changes the image config, the
// way `docker build` does, and returns its history text. A config grown
// past the limits of checkSize is an error.
func applyMeta(st *imageState, ins parser.Instruction) (string, error) {
	text, err := applyConfig(st, ins)
	if err != nil {
		return "", err
	}
	st.cfg.History = append(st.cfg.History, v1.History{CreatedBy: text})
	err = st.checkSize()
	st.cfg.History = st.cfg.History[:len(st.cfg.History)-1]
	return text, err
}

func applyConfig(st *imageState, ins parser.Instruction) (string, error) {
	c := &st.cfg.Config
	switch ins := ins.(type) {
	case *parser.Env:
		var parts []string
		for _, kv := range ins.Pairs {
			st.setEnv(kv.Key, kv.Value)
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		return "ENV " + strings.Join(parts, " "), nil
	case *parser.Label:
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		var parts []string
		for _, kv := range ins.Pairs {
			c.Labels[kv.Key] = kv.Value
			parts = append(parts, kv.Key+"="+strconv.Quote(kv.Value))
		}
		return "LABEL " + strings.Join(parts, " "), nil
	case *parser.User:
		c.User = ins.User
		return "USER " + ins.User, nil
	case *parser.Cmd:
		c.Cmd = commandLine(st, ins.Args, ins.Shell)
		st.cmdSet = true
		return "CMD " + jsonArray(c.Cmd), nil
	case *parser.Entrypoint:
		c.Entrypoint = commandLine(st, ins.Args, ins.Shell)
		if !st.cmdSet {
			// An ENTRYPOINT resets a CMD inherited from the base image.
			c.Cmd = nil
		}
		return "ENTRYPOINT " + jsonArray(c.Entrypoint), nil
	case *parser.Expose:
		ports, err := parsePorts(ins.Ports)
		if err != nil {
			return "", err
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			c.ExposedPorts[p] = struct{}{}
		}
		return "EXPOSE " + strings.Join(ports, " "), nil
	case *parser.Volume:
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for _, p := range ins.Paths {
			if p == "" {
				return "", fmt.Errorf("VOLUME specified can not be an empty string")
			}
			c.Volumes[p] = struct{}{}
		}
		return "VOLUME " + jsonArray(ins.Paths), nil
	case *parser.StopSignal:
		c.StopSignal = ins.Signal
		return "STOPSIGNAL " + ins.Signal, nil
	case *parser.Healthcheck:
		c.Healthcheck = &v1.HealthConfig{Test: ins.Test, Interval: ins.Interval, Timeout: ins.Timeout,
			StartPeriod: ins.StartPeriod, Retries: ins.Retries}
		return "HEALTHCHECK " + jsonArray(ins.Test), nil
	case *parser.Shell:
		c.Shell = ins.Shell
		return "SHELL " + jsonArray(ins.Shell), nil
	case *parser.Onbuild:
		c.OnBuild = append(c.OnBuild, ins.Expression)
		return "ONBUILD " + ins.Expression, nil
	case *parser.Maintainer:
		st.cfg.Author = ins.Name
		return "MAINTAINER " + ins.Name, nil
	}
	return "", fmt.Errorf("internal: unexpected instruction %T", ins)
}

// declareArgs brings ARGs into scope with the values the parser resolved
// (build arg, default, global ARG, predefined platform arg): the rules
// are in parser/args.go, not here.
func (b *build) declareArgs(st *imageState, ins *parser.Arg) {
	for _, a := range ins.Args {
		st.setArg(a.Key, a.Resolved)
	}
}

// argHistory is the history text of an ARG: as written in the Dockerfile,
// never with a --build-arg value, which may be a secret.
func argHistory(st *imageState, ins *parser.Arg) string {
	var parts []string
	for _, a := range ins.Args {
		if a.Value != nil {
			parts = append(parts, a.Key+"="+*a.Value)
		} else {
			parts = append(parts, a.Key)
		}
	}
	return "ARG " + strings.Join(parts, " ")
}

// commandLine is the argv of CMD, ENTRYPOINT or RUN: the shell form goes
// through SHELL.
func commandLine(st *imageState, args []string, shell bool) []string {
	if !shell {
		return append([]string(nil), args...)
	}
	return append(append([]string(nil), st.shell()...), strings.Join(args, " "))
}

// maxExposed bounds the ports one EXPOSE may name, duplicates counted:
// every port of every protocol once.
const maxExposed = 3 * 65536

// parsePorts expands EXPOSE arguments ("80", "53/udp", "8000-8002") into
// docker's "port/proto" keys.
func parsePorts(specs []string) ([]string, error) {
	var out []string
	for _, spec := range specs {
		port, proto, _ := strings.Cut(spec, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("invalid proto %q in EXPOSE %s", proto, spec)
		}
		lo, hi, isRange := strings.Cut(port, "-")
		start, err1 := strconv.ParseUint(lo, 10, 16)
		end := start
		var err2 error
		if isRange {
			end, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || end < start {
			return nil, fmt.Errorf("invalid containerPort: %s", port)
		}
		// Each range is written out, and a word of 7 bytes names 65,535
		// ports: without a bound, one long EXPOSE would fill memory.
		if len(out)+int(end-start+1) > maxExposed {
			return nil, fmt.Errorf("EXPOSE names more than %d ports", maxExposed)
		}
		for p := start; p <= end; p++ {
			out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
		}
	}
	return out, nil
}

// resolveWorkdir is WORKDIR's new value: relative paths are relative to
// the current one.
func resolveWorkdir(cur, p string) string {
	if !path.IsAbs(p) {
		p = path.Join(cur, p)
	}
	return path.Clean(p)
}

func jsonArray(a []string) string {
	if a == nil {
		a = []string{}
	}
	data, _ := json.Marshal(a)
	return string(data)
}
