package parser

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/builderdev/builder/internal/units"
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

// stageRefs are a step's references to other stages, resolved at parse
// time: its COPY --from, and the stage of each RUN --mount from= value.
type stageRefs struct {
	copyFrom *CopyFrom
	mounts   map[string]int
}

// expander returns a Step's expansion function. Each call parses the node
// afresh, because BuildKit's Expand methods change the command in place
// and a step may be expanded many times, from several goroutines; the node
// itself is only read.
func (b *planner) expander(n *bkparser.Node, pos Pos, refs stageRefs) func(env []string) (Instruction, error) {
	escape := b.escape
	// Read when the step is expanded: by then Parse has the whole scope.
	scope := &b.plan.scope
	name := strings.ToUpper(n.Value)
	return func(env []string) (Instruction, error) {
		v, err := instructions.ParseInstruction(n)
		if err != nil {
			e := toError(pos.File, err)
			e.Pos = pos
			return nil, e
		}
		x := &expansion{env: envList(env), lex: shell.NewLex(escape), escape: escape,
			name: name, what: name, scope: scope}
		if err := x.apply(v); err != nil {
			return nil, &Error{Pos: pos, Msg: err.Error()}
		}
		ins, err := convert(v, n, refs, x)
		if err != nil {
			return nil, &Error{Pos: pos, Msg: err.Error()}
		}
		return ins, nil
	}
}

// expansion is one Expand call: its environment and its own lexers (a lexer keeps state between words, and
// stages expand in parallel).
type expansion struct {
	env    envList
	lex    *shell.Lex // the file's escape token, for words
	raw    *shell.Lex // for heredoc contents, as BuildKit: '\\', quotes kept
	escape rune

	name     string // the instruction, for errors: "COPY"
	what     string // the word being expanded, for errors: "ARG A12"
	spent    int    // bytes expanded so far, against MaxInstructionSize
	scope    *argScope
	resolved []*string // ARG: what each name holds, by applyArg
}

func (x *expansion) process(lex *shell.Lex, escape rune, word string, limit int) (shell.ProcessWordResult, error) {
	res, err := expandWord(lex, escape, word, x.env, limit, x.what)
	if x.spent += len(res.Result); x.spent > MaxInstructionSize {
		return res, fmt.Errorf("%s: expanded values are longer than %s together", x.name, units.Limit(int64(MaxInstructionSize)))
	}
	return res, err
}

func (x *expansion) word(w string) (string, error) {
	res, err := x.process(x.lex, x.escape, w, MaxWordSize)
	return res.Result, err
}

func (x *expansion) rawWord(w string) (string, error) {
	if x.raw == nil {
		x.raw = shell.NewLex('\\')
		x.raw.SkipProcessQuotes = true
	}
	x.what = x.name + " heredoc"
	res, err := x.process(x.raw, '\\', w, MaxHeredocSize)
	return res.Result, err
}

// words expands and splits a word as a shell would (EXPOSE).
func (x *expansion) words(w string) ([]string, error) {
	res, err := x.process(x.lex, x.escape, w, MaxWordSize)
	return res.Words, err
}

// apply expands v in place following BuildKit's dispatch: words through
// Expand, heredoc contents through ExpandRaw, and for ARG only the
// defaults, and only those a build arg does not replace. ENV and ARG add
// to the stage's environment, which they may not grow past MaxEnvSize.
func (x *expansion) apply(v any) error {
	switch c := v.(type) {
	case *instructions.ArgCommand:
		return x.applyArg(c)
	case *instructions.EnvCommand:
		return x.applyEnv(c)
	case *instructions.LabelCommand:
		// BuildKit expands each key, then its value: name the label.
		calls := 0
		return c.Expand(func(w string) (string, error) {
			x.what = "LABEL " + shortKey(c.Labels[min(calls/2, len(c.Labels)-1)].Key)
			calls++
			return x.word(w)
		})
	}
	if ex, ok := v.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(x.word); err != nil {
			return err
		}
	}
	if ex, ok := v.(instructions.SupportsSingleWordExpansionRaw); ok {
		if err := ex.ExpandRaw(x.rawWord); err != nil {
			return err
		}
	}
	return nil
}

// applyEnv is EnvCommand.Expand (each key, then its value), naming the
// variable in errors.
func (x *expansion) applyEnv(c *instructions.EnvCommand) error {
	grow := envSize(x.env)
	for i, kv := range c.Env {
		x.what = "ENV " + shortKey(kv.Key)
		k, err := x.word(kv.Key)
		if err != nil {
			return err
		}
		v, err := x.word(kv.Value)
		if err != nil {
			return err
		}
		c.Env[i] = instructions.KeyValuePair{Key: k, Value: v, NoDelim: kv.NoDelim}
		if grow += len(k) + len(v) + 2; grow > MaxEnvSize {
			return fmt.Errorf("%s: %w", x.what, errEnvTooLarge)
		}
	}
	return nil
}

// shortKey is a variable or label name as errors show it.
func shortKey(k string) string {
	if len(k) > 40 {
		return quoteShort(k)
	}
	return k
}

// convert turns an expanded BuildKit command into our typed instruction.
func convert(v any, n *bkparser.Node, refs stageRefs, x *expansion) (Instruction, error) {
	switch c := v.(type) {
	case *instructions.EnvCommand:
		return &Env{Pairs: kvs(c.Env)}, nil
	case *instructions.LabelCommand:
		return &Label{Pairs: kvs(c.Labels)}, nil
	case *instructions.MaintainerCommand:
		return &Maintainer{Name: c.Maintainer}, nil
	case *instructions.AddCommand:
		cp := copyOf(n, c.SourcesAndDest, c.Chown, c.Chmod, c.Link, c.ExcludePatterns)
		cp.Add, cp.Checksum, cp.Unpack = true, c.Checksum, c.Unpack
		if c.KeepGitDir != nil {
			cp.KeepGitDir = *c.KeepGitDir
		}
		return cp, nil
	case *instructions.CopyCommand:
		cp := copyOf(n, c.SourcesAndDest, c.Chown, c.Chmod, c.Link, c.ExcludePatterns)
		cp.Parents = c.Parents
		if refs.copyFrom != nil {
			f := *refs.copyFrom
			cp.From = &f
		}
		return cp, nil
	case *instructions.OnbuildCommand:
		return &Onbuild{Expression: c.Expression}, nil
	case *instructions.WorkdirCommand:
		return &Workdir{Path: c.Path}, nil
	case *instructions.RunCommand:
		return convertRun(c, n, refs.mounts), nil
	case *instructions.CmdCommand:
		return &Cmd{Args: slices.Clone(c.CmdLine), Shell: c.PrependShell}, nil
	case *instructions.EntrypointCommand:
		return &Entrypoint{Args: slices.Clone(c.CmdLine), Shell: c.PrependShell}, nil
	case *instructions.HealthCheckCommand:
		h := c.Health
		return &Healthcheck{Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}, nil
	case *instructions.ExposeCommand:
		// BuildKit expands EXPOSE when it dispatches it, not in Expand,
		// and splits the result into words.
		var ports []string
		for _, p := range c.Ports {
			w, err := x.words(p)
			if err != nil {
				return nil, err
			}
			ports = append(ports, w...)
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
		for i, kv := range c.Args {
			a.Args = append(a.Args, ArgDef{Key: kv.Key, Value: kv.Value, Resolved: x.resolved[i]})
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

func copyOf(n *bkparser.Node, sd instructions.SourcesAndDest, chown, chmod string, link bool, exclude []string) *Copy {
	c := &Copy{Sources: slices.Clone(sd.SourcePaths), Dest: sd.DestPath, Chown: chown, Chmod: chmod,
		Link: link, Exclude: slices.Clone(exclude)}
	for _, s := range sd.SourceContents {
		h := Heredoc{Name: s.Path, Data: s.Data, Expand: s.Expand}
		for _, nh := range n.Heredocs {
			if nh.Name == s.Path {
				h.Chomp = nh.Chomp
			}
		}
		c.Inline = append(c.Inline, h)
	}
	return c
}

func convertRun(c *instructions.RunCommand, n *bkparser.Node, stages map[string]int) *Run {
	r := &Run{Args: slices.Clone(c.CmdLine), Shell: c.PrependShell,
		Network: string(instructions.GetNetwork(c)), Security: instructions.GetSecurity(c)}
	for i, f := range c.Files {
		h := Heredoc{Name: f.Name, Data: f.Data, Chomp: f.Chomp}
		if f.Chomp {
			// COPY's contents come chomped from BuildKit; RUN's the same
			// way, so the executor never needs BuildKit's rule. A shell
			// given the script back chomps again to the same result.
			h.Data = bkparser.ChompHeredocContent(f.Data)
		}
		if i < len(n.Heredocs) {
			h.Expand = n.Heredocs[i].Expand
		}
		r.Heredocs = append(r.Heredocs, h)
	}
	r.HeredocOnly = len(r.Heredocs) > 0 && len(c.CmdLine) == 1 && c.PrependShell && bkparser.MustParseHeredoc(c.CmdLine[0]) != nil
	for _, m := range instructions.GetMounts(c) {
		rm := RunMount{Type: string(m.Type), Target: m.Target, Source: m.Source, From: m.From,
			ReadOnly: m.ReadOnly, ID: m.CacheID, Sharing: string(m.CacheSharing), Required: m.Required, Stage: -1}
		if i, ok := stages[m.From]; ok && m.From != "" {
			rm.Stage = i
		}
		if m.Env != nil {
			v := *m.Env
			rm.Env = &v
		}
		rm.Size = m.SizeLimit
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
	for _, d := range instructions.GetDevices(c) {
		r.Devices = append(r.Devices, d.Name)
	}
	return r
}
