package parser

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// envList is a "KEY=VALUE" list as BuildKit's lexer reads it; the last
// value of a key wins.
type envList []string

func (e envList) Get(key string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func (e envList) Keys() []string {
	seen := map[string]bool{}
	var keys []string
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// expander returns a Step's expansion function. Each call parses the node
// afresh, because BuildKit's Expand methods change the command in place
// and a step may be expanded many times, from several goroutines.
func (b *planner) expander(n *bkparser.Node, pos Pos, from *CopyFrom) func(env []string) (Instruction, []string, error) {
	escape := b.escape
	return func(env []string) (Instruction, []string, error) {
		// A lexer keeps state between words, and stages expand in
		// parallel: each expansion gets its own.
		lex := shell.NewLex(escape)
		v, err := instructions.ParseInstruction(n)
		if err != nil {
			e := toError(pos.File, err)
			e.Pos = pos
			return nil, nil, e
		}
		used := map[string]bool{}
		expand := func(word string) (string, error) {
			res, err := lex.ProcessWordWithMatches(word, envList(env))
			for k := range res.Matched {
				used[k] = true
			}
			for k := range res.Unmatched {
				used[k] = true
			}
			return res.Result, err
		}
		if ex, ok := v.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(expand); err != nil {
				return nil, nil, &Error{Pos: pos, Msg: err.Error()}
			}
		}
		if ex, ok := v.(instructions.SupportsSingleWordExpansionRaw); ok {
			if err := ex.ExpandRaw(expand); err != nil {
				return nil, nil, &Error{Pos: pos, Msg: err.Error()}
			}
		}
		ins, err := convert(v, from, expand)
		if err != nil {
			return nil, nil, &Error{Pos: pos, Msg: err.Error()}
		}
		names := make([]string, 0, len(used))
		for k := range used {
			names = append(names, k)
		}
		slices.Sort(names)
		return ins, names, nil
	}
}

// convert turns an expanded BuildKit command into our typed instruction.
func convert(v any, from *CopyFrom, expand func(string) (string, error)) (Instruction, error) {
	switch c := v.(type) {
	case *instructions.EnvCommand:
		return &Env{Pairs: kvs(c.Env)}, nil
	case *instructions.LabelCommand:
		return &Label{Pairs: kvs(c.Labels)}, nil
	case *instructions.MaintainerCommand:
		return &Maintainer{Name: c.Maintainer}, nil
	case *instructions.AddCommand:
		cp := copyOf(c.SourcesAndDest, c.Chown, c.Chmod, c.Link, c.ExcludePatterns)
		cp.Add, cp.Checksum, cp.Unpack = true, c.Checksum, c.Unpack
		if c.KeepGitDir != nil {
			cp.KeepGitDir = *c.KeepGitDir
		}
		return cp, nil
	case *instructions.CopyCommand:
		cp := copyOf(c.SourcesAndDest, c.Chown, c.Chmod, c.Link, c.ExcludePatterns)
		cp.Parents = c.Parents
		if from != nil {
			f := *from
			cp.From = &f
		}
		return cp, nil
	case *instructions.OnbuildCommand:
		return &Onbuild{Expression: c.Expression}, nil
	case *instructions.WorkdirCommand:
		return &Workdir{Path: c.Path}, nil
	case *instructions.RunCommand:
		return convertRun(c), nil
	case *instructions.CmdCommand:
		return &Cmd{Args: slices.Clone(c.CmdLine), Shell: c.PrependShell}, nil
	case *instructions.EntrypointCommand:
		return &Entrypoint{Args: slices.Clone(c.CmdLine), Shell: c.PrependShell}, nil
	case *instructions.HealthCheckCommand:
		h := c.Health
		return &Healthcheck{Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}, nil
	case *instructions.ExposeCommand:
		// BuildKit expands EXPOSE when it dispatches it, not in Expand.
		var ports []string
		for _, p := range c.Ports {
			e, err := expand(p)
			if err != nil {
				return nil, err
			}
			ports = append(ports, strings.Fields(e)...)
		}
		return &Expose{Ports: ports}, nil
	case *instructions.UserCommand:
		return &User{User: c.User}, nil
	case *instructions.VolumeCommand:
		return &Volume{Paths: slices.Clone(c.Volumes)}, nil
	case *instructions.StopSignalCommand:
		return &StopSignal{Signal: c.Signal}, nil
	case *instructions.ArgCommand:
		a := &Arg{}
		for _, kv := range c.Args {
			a.Args = append(a.Args, ArgDef{Key: kv.Key, Value: kv.Value})
		}
		return a, nil
	case *instructions.ShellCommand:
		return &Shell{Shell: slices.Clone(c.Shell)}, nil
	}
	return nil, fmt.Errorf("unsupported instruction %T", v)
}

func kvs(in instructions.KeyValuePairs) []KV {
	out := make([]KV, len(in))
	for i, kv := range in {
		out[i] = KV{Key: kv.Key, Value: kv.Value}
	}
	return out
}

func copyOf(sd instructions.SourcesAndDest, chown, chmod string, link bool, exclude []string) *Copy {
	c := &Copy{Sources: slices.Clone(sd.SourcePaths), Dest: sd.DestPath, Chown: chown, Chmod: chmod,
		Link: link, Exclude: slices.Clone(exclude)}
	for _, s := range sd.SourceContents {
		c.Inline = append(c.Inline, Heredoc{Name: s.Path, Data: s.Data, Expand: s.Expand})
	}
	return c
}

func convertRun(c *instructions.RunCommand) *Run {
	r := &Run{Args: slices.Clone(c.CmdLine), Shell: c.PrependShell,
		Network: string(instructions.GetNetwork(c)), Security: instructions.GetSecurity(c)}
	for _, f := range c.Files {
		r.Heredocs = append(r.Heredocs, Heredoc{Name: f.Name, Data: f.Data, Chomp: f.Chomp})
	}
	for _, m := range instructions.GetMounts(c) {
		rm := RunMount{Type: string(m.Type), Target: m.Target, Source: m.Source, From: m.From,
			ReadOnly: m.ReadOnly, ID: m.CacheID, Sharing: string(m.CacheSharing), Required: m.Required}
		if m.Env != nil {
			rm.Env = *m.Env
		}
		if m.UID != nil {
			u := int(*m.UID)
			rm.UID = &u
		}
		if m.GID != nil {
			g := int(*m.GID)
			rm.GID = &g
		}
		if m.Mode != nil {
			md := uint32(*m.Mode)
			rm.Mode = &md
		}
		r.Mounts = append(r.Mounts, rm)
	}
	return r
}
