package parser

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
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
		p.Warnings = append(p.Warnings, Pos{File: file, Line: line}.String()+": "+w.Short)
	}
	b := &planner{plan: p, opts: opts, lex: shell.NewLex(res.EscapeToken), escape: res.EscapeToken}
	if err := b.walk(res.AST); err != nil {
		return nil, err
	}
	if err := b.target(); err != nil {
		return nil, err
	}
	return p, nil
}

// planner builds a Plan from BuildKit's AST, one node at a time.
type planner struct {
	plan    *Plan
	opts    Options
	lex     *shell.Lex // for FROM lines and global ARGs, used while parsing only
	escape  rune
	metaEnv []string // global ARG values and predefined platform args
}

func (b *planner) pos(n *bkparser.Node) Pos {
	return Pos{File: b.plan.File, Line: n.StartLine, EndLine: n.EndLine}
}

func (b *planner) walk(ast *bkparser.Node) error {
	if len(ast.Children) == 0 {
		return &Error{Pos: Pos{File: b.plan.File}, Msg: "the Dockerfile has no instructions"}
	}
	b.metaEnv = platformArgs(b.opts)
	for _, n := range ast.Children {
		v, err := instructions.ParseInstruction(n)
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
				b.addGlobalArgs(c)
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

// addGlobalArgs records ARGs before the first FROM; their values (a build
// arg wins over the default, which may use earlier global ARGs) feed FROM.
func (b *planner) addGlobalArgs(c *instructions.ArgCommand) {
	for _, kv := range c.Args {
		def := ArgDef{Key: kv.Key, Value: kv.Value}
		b.plan.Args = append(b.plan.Args, def)
		if v, ok := b.opts.BuildArgs[kv.Key]; ok {
			b.metaEnv = append(b.metaEnv, kv.Key+"="+v)
		} else if kv.Value != nil {
			v, _, err := b.lex.ProcessWord(*kv.Value, envList(b.metaEnv))
			if err != nil {
				v = *kv.Value
			}
			b.metaEnv = append(b.metaEnv, kv.Key+"="+v)
		}
	}
}

func (b *planner) expandMeta(n *bkparser.Node, word string) (string, error) {
	v, _, err := b.lex.ProcessWord(word, envList(b.metaEnv))
	if err != nil {
		return "", &Error{Pos: b.pos(n), Msg: err.Error()}
	}
	return v, nil
}

func (b *planner) addStage(n *bkparser.Node, c *instructions.Stage) error {
	s := &Stage{Index: len(b.plan.Stages), Name: strings.ToLower(c.Name), Pos: b.pos(n)}
	if s.Name != "" {
		if _, dup := b.stageByName(s.Name); dup {
			return &Error{Pos: s.Pos, Msg: fmt.Sprintf("duplicate stage name %q", s.Name)}
		}
	}
	base, err := b.expandMeta(n, c.BaseName)
	if err != nil {
		return err
	}
	if base == "" {
		return &Error{Pos: s.Pos, Msg: fmt.Sprintf("base name (%s) should not be blank", c.BaseName)}
	}
	if s.Platform, err = b.expandMeta(n, c.Platform); err != nil {
		return err
	}
	switch i, ok := b.stageByName(base); {
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

func (b *planner) stageByName(name string) (int, bool) {
	for i, s := range b.plan.Stages {
		if s.Name != "" && strings.EqualFold(s.Name, name) {
			return i, true
		}
	}
	return 0, false
}

// addStep appends a step to the current stage, resolving its references
// to other stages.
func (b *planner) addStep(n *bkparser.Node, c instructions.Command) error {
	s := b.plan.Stages[len(b.plan.Stages)-1]
	step := Step{Pos: b.pos(n), Name: strings.ToUpper(c.Name()), Text: sourceText(n, c)}
	var from *CopyFrom
	switch c := c.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			f, err := b.copyFrom(n, s, c.From)
			if err != nil {
				return err
			}
			from = f
			if f.Stage >= 0 {
				s.Deps = addDep(s.Deps, f.Stage)
			}
		}
	case *instructions.RunCommand:
		if err := b.runMountDeps(n, s); err != nil {
			return err
		}
	}
	step.expand = b.expander(n, step.Pos, from)
	s.Steps = append(s.Steps, step)
	return nil
}

// copyFrom resolves COPY --from: an earlier stage by name or index, or
// else an image reference.
func (b *planner) copyFrom(n *bkparser.Node, s *Stage, raw string) (*CopyFrom, error) {
	v, err := b.expandMeta(n, raw)
	if err != nil {
		return nil, err
	}
	if i, ok := b.stageByName(v); ok {
		return &CopyFrom{Stage: i}, nil
	}
	if s.Name != "" && strings.EqualFold(v, s.Name) {
		return nil, &Error{Pos: b.pos(n), Msg: fmt.Sprintf("COPY --from=%s refers to the stage it is in", v)}
	}
	if i, err := strconv.Atoi(v); err == nil {
		if i < 0 || i >= s.Index {
			return nil, &Error{Pos: b.pos(n), Msg: fmt.Sprintf("invalid from flag value %d: refers to current or future build stage", i)}
		}
		return &CopyFrom{Stage: i}, nil
	}
	return &CopyFrom{Stage: -1, Image: v}, nil
}

// runMountDeps adds the stages RUN --mount from= reads to the stage's deps.
func (b *planner) runMountDeps(n *bkparser.Node, s *Stage) error {
	v, err := instructions.ParseInstruction(n)
	if err != nil {
		return b.nodeError(n, err)
	}
	run := v.(*instructions.RunCommand)
	if err := run.Expand(func(w string) (string, error) { return b.expandMeta(n, w) }); err != nil {
		return b.nodeError(n, err)
	}
	for _, m := range instructions.GetMounts(run) {
		if m.From == "" {
			continue
		}
		if i, ok := b.stageByName(m.From); ok {
			s.Deps = addDep(s.Deps, i)
		} else if i, err := strconv.Atoi(m.From); err == nil && i >= 0 && i < s.Index {
			s.Deps = addDep(s.Deps, i)
		}
	}
	return nil
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

// target sets Plan.Target from Options.Target, or the last stage.
func (b *planner) target() error {
	b.plan.Target = len(b.plan.Stages) - 1
	if b.opts.Target == "" {
		return nil
	}
	if i, ok := b.stageByName(b.opts.Target); ok {
		b.plan.Target = i
		return nil
	}
	return &Error{Pos: Pos{File: b.plan.File}, Msg: fmt.Sprintf("target stage %q could not be found", b.opts.Target)}
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
	// dependency order.
	var out []int
	for i, ok := range seen {
		if ok {
			out = append(out, i)
		}
	}
	return out
}

var parseErrorPrefix = regexp.MustCompile(`^dockerfile parse error on line \d+: `)

// toError turns a BuildKit error into an *Error with the line it names.
func toError(file string, err error) *Error {
	pos := Pos{File: file}
	var le *bkparser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		r := le.Locations[0]
		pos.Line, pos.EndLine = r[0].Start.Line, r[len(r)-1].End.Line
	}
	return &Error{Pos: pos, Msg: parseErrorPrefix.ReplaceAllString(err.Error(), "")}
}

// nodeError is toError with the node's own line when the error has none.
func (b *planner) nodeError(n *bkparser.Node, err error) *Error {
	e := toError(b.plan.File, err)
	if e.Pos.Line == 0 {
		e.Pos = b.pos(n)
	}
	return e
}

// sourceText is the instruction as written, continuation lines joined.
func sourceText(n *bkparser.Node, c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok && s.String() != "" {
		return strings.TrimSpace(s.String())
	}
	return strings.TrimSpace(n.Original)
}

// platformArgs are the automatic platform ARGs docker gives FROM lines.
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
	return env
}

// ParseTrigger parses one ONBUILD trigger (e.g. "COPY . /app") as a Step,
// so that triggers recorded in a base image can run in a later build.
func ParseTrigger(expr string, pos Pos, escape rune) (Step, error) {
	directive := ""
	if escape == '`' {
		directive = "# escape=`\n"
	}
	res, err := bkparser.Parse(strings.NewReader(directive + expr + "\n"))
	if err != nil {
		e := toError(pos.File, err)
		e.Pos = pos
		return Step{}, e
	}
	if len(res.AST.Children) != 1 {
		return Step{}, &Error{Pos: pos, Msg: fmt.Sprintf("ONBUILD trigger %q is not one instruction", expr)}
	}
	n := res.AST.Children[0]
	v, err := instructions.ParseInstruction(n)
	if err != nil {
		e := toError(pos.File, err)
		e.Pos = pos
		return Step{}, e
	}
	c, ok := v.(instructions.Command)
	if !ok {
		return Step{}, &Error{Pos: pos, Msg: fmt.Sprintf("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(n.Value))}
	}
	b := &planner{plan: &Plan{File: pos.File}, lex: shell.NewLex(res.EscapeToken), escape: res.EscapeToken}
	step := Step{Pos: pos, Name: strings.ToUpper(c.Name()), Text: sourceText(n, c)}
	var from *CopyFrom
	if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
		from = &CopyFrom{Stage: -1, Image: cp.From}
	}
	step.expand = b.expander(n, pos, from)
	return step, nil
}
