package parser

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/util/suggest"
)

// maxDockerfileSize bounds what Parse reads; BuildKit's own limit for a
// Dockerfile sent to the daemon is of the same order.
const maxDockerfileSize = 16 << 20

// Parse reads a Dockerfile and returns its checked Plan. Errors are *Error
// values naming the file and line.
func Parse(r io.Reader, opts Options) (*Plan, error) {
	file := opts.Filename
	if file == "" {
		file = "Dockerfile"
	}
	data, err := io.ReadAll(io.LimitReader(r, maxDockerfileSize+1))
	if err != nil {
		return nil, &Error{Pos: Pos{File: file}, Msg: "reading: " + err.Error()}
	}
	if len(data) > maxDockerfileSize {
		return nil, &Error{Pos: Pos{File: file}, Msg: fmt.Sprintf("the Dockerfile is larger than %d MiB", maxDockerfileSize>>20)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{Pos: Pos{File: file}, Msg: "the Dockerfile cannot be empty"}
	}
	res, err := bkparser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, toError(file, err)
	}
	p := &Plan{File: file, Escape: res.EscapeToken}
	if syntax, _, _, ok := bkparser.DetectSyntax(data); ok {
		p.Syntax = syntax
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		p.warn(line, w.Short)
	}
	b := &planner{plan: p, opts: opts, lex: shell.NewLex(res.EscapeToken), escape: res.EscapeToken}
	b.lint = linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []bkparser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		p.warn(line, rule+": "+msg)
	}})
	if err := b.walk(res.AST); err != nil {
		return nil, err
	}
	if err := b.target(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Plan) warn(line int, msg string) {
	p.Warnings = append(p.Warnings, Pos{File: p.File, Line: line}.String()+": "+msg)
}

// planner builds a Plan from BuildKit's AST, one node at a time.
type planner struct {
	plan    *Plan
	opts    Options
	lex     *shell.Lex // for FROM lines and global ARGs, used while parsing only
	escape  rune
	lint    *linter.Linter
	metaEnv []string // predefined platform args, then global ARG values

	pendingNames []pendingRef // stage-like names taken for images so far
}

// pendingRef is a name that COPY --from or RUN --mount from= took for an
// image; it is an error if a later stage has that name.
type pendingRef struct {
	pos       Pos
	what, ref string
}

func (b *planner) pos(n *bkparser.Node) Pos {
	return Pos{File: b.plan.File, Line: n.StartLine, EndLine: n.EndLine}
}

func (b *planner) walk(ast *bkparser.Node) error {
	b.metaEnv = platformArgs(b.opts)
	for _, n := range ast.Children {
		v, err := instructions.ParseInstructionWithLinter(n, b.lint)
		if err != nil {
			return b.nodeError(n, err)
		}
		switch c := v.(type) {
		case *instructions.Stage:
			if err := b.addStage(n, c); err != nil {
				return err
			}
		case *instructions.ArgCommand:
			if len(b.plan.Stages) == 0 {
				if err := b.addGlobalArgs(n, c); err != nil {
					return err
				}
				continue
			}
			if err := b.addStep(n, c); err != nil {
				return err
			}
		case instructions.Command:
			if len(b.plan.Stages) == 0 {
				return &Error{Pos: b.pos(n), Msg: fmt.Sprintf("%s before the first FROM: only ARG may come before FROM", strings.ToUpper(n.Value))}
			}
			if err := b.addStep(n, c); err != nil {
				return err
			}
		default:
			return &Error{Pos: b.pos(n), Msg: fmt.Sprintf("unexpected instruction %s", n.Value)}
		}
	}
	if len(b.plan.Stages) == 0 {
		return &Error{Pos: Pos{File: b.plan.File}, Msg: "no build stage in the Dockerfile: it needs a FROM"}
	}
	return nil
}

// addGlobalArgs records ARGs before the first FROM. Their values feed FROM
// lines: a build arg wins over the default, which is expanded with the
// earlier global ARGs, as docker does.
func (b *planner) addGlobalArgs(n *bkparser.Node, c *instructions.ArgCommand) error {
	for _, kv := range c.Args {
		def := ArgDef{Key: kv.Key}
		if kv.Value != nil {
			v, err := b.expandMeta(n, *kv.Value)
			if err != nil {
				return err
			}
			def.Value = &v
		}
		b.plan.Args = append(b.plan.Args, def)
		if v, ok := b.opts.BuildArgs[kv.Key]; ok {
			b.metaEnv = append(b.metaEnv, kv.Key+"="+v)
		} else if def.Value != nil {
			b.metaEnv = append(b.metaEnv, kv.Key+"="+*def.Value)
		}
	}
	return nil
}

// expandMeta expands a word with the global ARGs and the predefined
// platform args: a global ARG default, or a reference to an image.
func (b *planner) expandMeta(n *bkparser.Node, word string) (string, error) {
	res, err := b.lex.ProcessWordWithMatches(word, envList(b.metaEnv))
	if err != nil {
		return "", &Error{Pos: b.pos(n), Msg: err.Error()}
	}
	return res.Result, nil
}

// expandFrom is expandMeta for a FROM line, which warns, as docker does,
// about a variable that no global ARG declares.
func (b *planner) expandFrom(n *bkparser.Node, word string) (string, error) {
	res, err := b.lex.ProcessWordWithMatches(word, envList(b.metaEnv))
	if err != nil {
		return "", &Error{Pos: b.pos(n), Msg: err.Error()}
	}
	names := slices.Sorted(maps.Keys(res.Unmatched))
	for _, name := range names {
		if !b.declaredGlobal(name) {
			b.plan.warn(n.StartLine, fmt.Sprintf("UndefinedArgInFrom: FROM argument '%s' is not declared", name))
		}
	}
	return res.Result, nil
}

func (b *planner) declaredGlobal(name string) bool {
	for _, a := range b.plan.Args {
		if a.Key == name {
			return true
		}
	}
	return false
}

func (b *planner) addStage(n *bkparser.Node, c *instructions.Stage) error {
	s := &Stage{Index: len(b.plan.Stages), Name: strings.ToLower(c.Name), Pos: b.pos(n)}
	if s.Name != "" {
		if i, dup := b.stageByName(s.Name); dup {
			return &Error{Pos: s.Pos, Msg: fmt.Sprintf("duplicate stage name %q (first defined at line %d)", s.Name, b.plan.Stages[i].Pos.Line)}
		}
	}
	base, err := b.expandFrom(n, c.BaseName)
	if err != nil {
		return err
	}
	if base == "" {
		return &Error{Pos: s.Pos, Msg: fmt.Sprintf("base name (%s) should not be blank", c.BaseName)}
	}
	if s.Platform, err = b.expandFrom(n, c.Platform); err != nil {
		return err
	}
	if c.Platform != "" && s.Platform == "" {
		return &Error{Pos: s.Pos, Msg: fmt.Sprintf("empty platform value from expression %s", c.Platform)}
	}
	switch i, ok := b.earlierStage(base, s.Index); {
	case strings.EqualFold(base, "scratch"):
		s.Base = Base{Kind: BaseScratch}
	case ok:
		s.Base = Base{Kind: BaseStage, Stage: i}
		s.Deps = []int{i}
	default:
		s.Base = Base{Kind: BaseImage, Image: base}
	}
	b.plan.Stages = append(b.plan.Stages, s)
	return nil
}

// stageByName finds a stage of the plan so far by name, ignoring case.
func (b *planner) stageByName(name string) (int, bool) {
	for i, s := range b.plan.Stages {
		if s.Name != "" && strings.EqualFold(s.Name, name) {
			return i, true
		}
	}
	return 0, false
}

// earlierStage resolves a stage reference (a name, or an index written as
// a plain number) to a stage before stage cur.
func (b *planner) earlierStage(ref string, cur int) (int, bool) {
	if i, ok := b.stageByName(ref); ok && i < cur {
		return i, true
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < cur && strconv.Itoa(i) == ref {
		return i, true
	}
	return 0, false
}

// addStep appends a step to the current stage, resolving its references
// to other stages.
func (b *planner) addStep(n *bkparser.Node, c instructions.Command) error {
	s := b.plan.Stages[len(b.plan.Stages)-1]
	step := Step{Pos: b.pos(n), Name: strings.ToUpper(c.Name()), Text: sourceText(n, c)}
	var refs stageRefs
	switch c := c.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			f, err := b.copyFrom(n, s, c.From)
			if err != nil {
				return err
			}
			refs.copyFrom = f
			if f.Stage >= 0 {
				s.Deps = addDep(s.Deps, f.Stage)
			}
		}
	case *instructions.RunCommand:
		m, err := b.runMountDeps(n, s, c)
		if err != nil {
			return err
		}
		refs.mounts = m
	case *instructions.EnvCommand:
		b.legacyKV(n, "ENV", c.Env)
	case *instructions.LabelCommand:
		b.legacyKV(n, "LABEL", c.Labels)
	}
	step.expand = b.expander(n, step.Pos, refs)
	s.Steps = append(s.Steps, step)
	return nil
}

// legacyKV warns about "ENV key value", which docker deprecates.
func (b *planner) legacyKV(n *bkparser.Node, name string, kvs instructions.KeyValuePairs) {
	for _, kv := range kvs {
		if kv.NoDelim {
			b.plan.warn(n.StartLine, "LegacyKeyValueFormat: "+linter.RuleLegacyKeyValueFormat.Format(name))
			return
		}
	}
}

// copyFrom resolves COPY --from: an earlier stage by name or index, or
// else an image reference.
func (b *planner) copyFrom(n *bkparser.Node, s *Stage, raw string) (*CopyFrom, error) {
	v, err := b.expandMeta(n, raw)
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, &Error{Pos: b.pos(n), Msg: fmt.Sprintf("COPY --from=%s is empty after expansion", raw)}
	}
	if i, ok := b.earlierStage(v, s.Index); ok {
		return &CopyFrom{Stage: i}, nil
	}
	if err := b.laterStage(n, s, "COPY --from", v); err != nil {
		return nil, err
	}
	return &CopyFrom{Stage: -1, Image: v}, nil
}

// laterStage rejects a reference to the current stage or a later one:
// stages run in file order here, and docker's classic builder refused them
// too. Taking the name for an image instead would pull something unrelated.
func (b *planner) laterStage(n *bkparser.Node, s *Stage, what, ref string) error {
	if s.Name != "" && strings.EqualFold(ref, s.Name) {
		return &Error{Pos: b.pos(n), Msg: fmt.Sprintf("%s=%s refers to the stage it is in", what, ref)}
	}
	if i, err := strconv.Atoi(ref); err == nil {
		return &Error{Pos: b.pos(n), Msg: fmt.Sprintf("invalid from flag value %d: refers to current or future build stage", i)}
	}
	// A name may belong to a stage not parsed yet: target() checks once
	// all stages are known.
	b.pendingNames = append(b.pendingNames, pendingRef{pos: b.pos(n), what: what, ref: ref})
	return nil
}

// runMountDeps adds the stages RUN --mount from= reads to the stage's deps
// and returns them by from= value. Like BuildKit, it reads from= as
// written: variables are not allowed there.
func (b *planner) runMountDeps(n *bkparser.Node, s *Stage, run *instructions.RunCommand) (map[string]int, error) {
	var stages map[string]int
	for _, m := range instructions.GetMounts(run) {
		if m.From == "" {
			continue
		}
		if i, ok := b.earlierStage(m.From, s.Index); ok {
			s.Deps = addDep(s.Deps, i)
			if stages == nil {
				stages = map[string]int{}
			}
			stages[m.From] = i
			continue
		}
		if err := b.laterStage(n, s, "RUN --mount from", m.From); err != nil {
			return nil, err
		}
	}
	return stages, nil
}

func addDep(deps []int, i int) []int {
	for j, d := range deps {
		if d == i {
			return deps
		}
		if d > i {
			return append(deps[:j], append([]int{i}, deps[j:]...)...)
		}
	}
	return append(deps, i)
}

// target sets Plan.Target from Options.Target, or the last stage, after
// checking that no step named a stage defined after it.
func (b *planner) target() error {
	for _, r := range b.pendingNames {
		if i, ok := b.stageByName(r.ref); ok {
			return &Error{Pos: r.pos, Msg: fmt.Sprintf("%s=%s refers to a stage defined later, at line %d: a stage can only use the stages before it", r.what, r.ref, b.plan.Stages[i].Pos.Line)}
		}
	}
	b.plan.Target = len(b.plan.Stages) - 1
	if b.opts.Target == "" {
		return nil
	}
	if i, ok := b.stageByName(b.opts.Target); ok {
		b.plan.Target = i
		return nil
	}
	var names []string
	for _, s := range b.plan.Stages {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	err := suggest.WrapError(fmt.Errorf("target stage %q could not be found", b.opts.Target), b.opts.Target, names, false)
	return &Error{Pos: Pos{File: b.plan.File}, Msg: err.Error()}
}

func (p *Plan) needed(target int) []int {
	seen := make([]bool, len(p.Stages))
	var visit func(i int)
	visit = func(i int) {
		if i < 0 || i >= len(p.Stages) || seen[i] {
			return
		}
		seen[i] = true
		for _, d := range p.Stages[i].Deps {
			visit(d)
		}
	}
	visit(target)
	// Deps always point to earlier stages, so index order is a valid
	// dependency order, and a stable one.
	var out []int
	for i, ok := range seen {
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// sourceText is the instruction as written, continuation lines joined.
func sourceText(n *bkparser.Node, c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok && s.String() != "" {
		return strings.TrimSpace(s.String())
	}
	return strings.TrimSpace(n.Original)
}

// platformArgs are the automatic platform ARGs docker gives FROM lines. A
// build arg of the same name overrides one, as in BuildKit.
func platformArgs(o Options) []string {
	build := o.BuildPlatform
	if build == "" {
		build = "linux/" + runtime.GOARCH
	}
	target := o.TargetPlatform
	if target == "" {
		target = build
	}
	var env []string
	for _, p := range []struct{ prefix, value string }{{"BUILD", build}, {"TARGET", target}} {
		parts := strings.SplitN(p.value, "/", 3)
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		env = append(env, p.prefix+"PLATFORM="+p.value, p.prefix+"OS="+parts[0],
			p.prefix+"ARCH="+parts[1], p.prefix+"VARIANT="+parts[2])
	}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := o.BuildArgs[k]; ok {
			env[i] = k + "=" + v
		}
	}
	return env
}
