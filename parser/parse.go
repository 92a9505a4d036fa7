package parser

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
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
	if line := longLine(data); line > 0 {
		// BuildKit stops at such a line and names the one before it, or
		// says the file has no instructions when it is the first.
		return nil, &Error{Pos: Pos{File: file, Line: line, EndLine: line}, Msg: fmt.Sprintf("dockerfile line greater than max allowed size of %d", maxLine)}
	}
	res, err := bkparser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, toError(file, err)
	}
	p := &Plan{File: file, Escape: res.EscapeToken}
	if syntax, _, loc, ok := bkparser.DetectSyntax(data); ok {
		p.Syntax = syntax
		if !dockerfileFrontend(syntax) {
			line := 0
			if len(loc) > 0 {
				line = loc[0].Start.Line
			}
			p.warn(line, fmt.Sprintf("syntax=%s: builder reads Dockerfiles with BuildKit's own parser and runs no other frontend; the directive is ignored", syntax))
		}
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		p.warn(line, w.Short)
	}
	b := &planner{plan: p, opts: opts, lex: shell.NewLex(res.EscapeToken), escape: res.EscapeToken}
	if b.lint, err = newLinter(p, data); err != nil {
		return nil, err
	}
	if err := b.walk(res.AST); err != nil {
		return nil, err
	}
	if b.lint.ReturnAsError && len(*b.lint.CalledRules) > 0 {
		// check=error=true, in BuildKit's words with the rules sorted;
		// the warnings are the reasons, and no plan carries them out.
		rules := slices.Compact(slices.Sorted(slices.Values(*b.lint.CalledRules)))
		return nil, &Error{Pos: Pos{File: file}, Msg: "lint violation found for rules: " + strings.Join(rules, ", ") + " (" + strings.Join(p.Warnings, "; ") + ")"}
	}
	if err := b.resolvePending(); err != nil {
		return nil, err
	}
	if err := b.target(); err != nil {
		return nil, err
	}
	return p, nil
}

// newLinter is BuildKit's linter as the "# check=skip=…;error=true"
// directive configures it, warning into p.
func newLinter(p *Plan, data []byte) (*linter.Linter, error) {
	checks, _, loc, _ := bkparser.ParseDirective("check", data)
	cfg, err := linter.ParseLintOptions(checks)
	if err != nil {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		return nil, &Error{Pos: Pos{File: p.File, Line: line, EndLine: line}, Msg: "check directive: " + err.Error()}
	}
	cfg.Warn = func(rule, _, _, msg string, loc []bkparser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		p.warn(line, rule+": "+msg)
	}
	return linter.New(cfg), nil
}

// maxLine is the longest line BuildKit's parser reads (its bufio.Scanner
// holds 64 KiB, the newline included).
const maxLine = bufio.MaxScanTokenSize - 1

// longLine returns the number of the first line longer than maxLine, or 0.
func longLine(data []byte) int {
	for n := 1; len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		if i > maxLine {
			return n
		}
		data = data[min(i+1, len(data)):]
	}
	return 0
}

func (p *Plan) warn(line int, msg string) {
	p.Warnings = append(p.Warnings, Pos{File: p.File, Line: line}.String()+": "+msg)
}

// planner builds a Plan from BuildKit's AST, one node at a time.
type planner struct {
	plan     *Plan
	opts     Options
	lex      *shell.Lex // for FROM lines and global ARGs, used while parsing only
	escape   rune
	lint     *linter.Linter
	metaSize int             // envSize of plan.scope.meta
	declared map[string]bool // the names any ARG declares, for Plan.UnusedArgs

	pending []pendingRef   // stage references not resolved yet
	edgePos map[[2]int]Pos // where each dependency edge was made, for cycle errors
}

// pendingRef is a COPY --from or RUN --mount from= value that names no
// stage before its own. Once every stage is known it becomes a later
// stage, as in BuildKit, or stays an image reference.
type pendingRef struct {
	pos       Pos
	what, ref string
	stage     *Stage
	copyFrom  *CopyFrom      // COPY --from: set Stage when ref is a stage
	mounts    map[string]int // RUN --mount from=: add ref when it is a stage
}

func (b *planner) pos(n *bkparser.Node) Pos {
	return Pos{File: b.plan.File, Line: n.StartLine, EndLine: n.EndLine}
}

func (b *planner) walk(ast *bkparser.Node) error {
	b.plan.scope = argScope{buildArgs: maps.Clone(b.opts.BuildArgs), meta: platformArgs(b.opts)}
	b.metaSize = envSize(b.plan.scope.meta)
	b.declared = map[string]bool{}
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
			for _, kv := range c.Args {
				b.declared[kv.Key] = true
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
	b.plan.ProxyEnv = proxyEnv(b.opts.BuildArgs)
	b.plan.UnusedArgs = unusedArgs(b.opts.BuildArgs, b.declared)
	return nil
}

// expandMeta expands a word with the global ARGs and the predefined
// platform args: a global ARG default, or a reference to an image.
func (b *planner) expandMeta(n *bkparser.Node, word, what string) (string, error) {
	res, err := expandWord(b.lex, b.escape, word, b.plan.scope.meta, MaxWordSize, what)
	if err != nil {
		return "", &Error{Pos: b.pos(n), Msg: err.Error()}
	}
	return res.Result, nil
}

// expandFrom is expandMeta for a FROM line, which warns, as docker does,
// about a variable that no global ARG declares.
func (b *planner) expandFrom(n *bkparser.Node, word string) (string, error) {
	res, err := expandWord(b.lex, b.escape, word, b.plan.scope.meta, MaxWordSize, "FROM")
	if err != nil {
		return "", &Error{Pos: b.pos(n), Msg: err.Error()}
	}
	names := slices.Sorted(maps.Keys(res.Unmatched))
	for _, name := range names {
		if !b.declaredGlobal(name) {
			b.lint.Run(&linter.RuleUndefinedArgInFrom, n.Location(), linter.RuleUndefinedArgInFrom.Format(name, ""))
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
	named, isNamed := b.opts.NamedContexts[strings.ToLower(base)]
	switch i, ok := b.earlierStage(base, s.Index); {
	case isNamed && named.Image != "":
		s.Base = Base{Kind: BaseImage, Image: named.Image}
	case isNamed:
		return &Error{Pos: s.Pos, Msg: fmt.Sprintf("FROM %s: the build context %s is a directory, which can only be copied from (COPY --from=%s); give an image as docker-image://REF to build on", base, base, base)}
	case strings.EqualFold(base, "scratch"):
		s.Base = Base{Kind: BaseScratch}
	case ok:
		s.Base = Base{Kind: BaseStage, Stage: i}
		b.addDep(s, i, s.Pos)
	default:
		if repo := repoPath(base); repo != strings.ToLower(repo) {
			// docker's words; the registry client would only say it
			// cannot parse the reference.
			return &Error{Pos: s.Pos, Msg: fmt.Sprintf("FROM %s: invalid reference format: repository name (%s) must be lowercase", base, repo)}
		}
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

// earlierFrom resolves a --from value to a stage before stage cur: a
// name, or any number strconv.Atoi reads ("01" too), as BuildKit's
// --from does; FROM is stricter, see earlierStage.
func (b *planner) earlierFrom(ref string, cur int) (int, bool) {
	if i, ok := b.stageByName(ref); ok && i < cur {
		return i, true
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < cur {
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
				b.addDep(s, f.Stage, step.Pos)
			}
		}
	case *instructions.RunCommand:
		if err := checkMountFlags(n, c); err != nil {
			return &Error{Pos: step.Pos, Msg: err.Error()}
		}
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

// checkMountFlags reads a RUN's --mount options now, when none holds a
// variable, so that a bad one ("sharing=sometimes", "type=cahce") is an
// error of the Dockerfile rather than of its step, which runs after the
// steps before it. BuildKit reads them only when it expands the step.
func checkMountFlags(n *bkparser.Node, c *instructions.RunCommand) error {
	for _, f := range n.Flags {
		if strings.Contains(f, "$") {
			return nil
		}
	}
	return c.Expand(func(word string) (string, error) { return word, nil })
}

// legacyKV warns about "ENV key value", which docker deprecates.
func (b *planner) legacyKV(n *bkparser.Node, name string, kvs instructions.KeyValuePairs) {
	for _, kv := range kvs {
		if kv.NoDelim {
			b.lint.Run(&linter.RuleLegacyKeyValueFormat, n.Location(), linter.RuleLegacyKeyValueFormat.Format(name))
			return
		}
	}
}

// copyFrom resolves COPY --from: a stage by name or index, or else an
// image reference. A stage defined further down is resolved by
// resolvePending, once all stages are known.
func (b *planner) copyFrom(n *bkparser.Node, s *Stage, raw string) (*CopyFrom, error) {
	v, err := b.expandMeta(n, raw, "COPY --from")
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, &Error{Pos: b.pos(n), Msg: fmt.Sprintf("COPY --from=%s is empty after expansion", raw)}
	}
	if named, ok := b.opts.NamedContexts[strings.ToLower(v)]; ok {
		return &CopyFrom{Stage: -1, Image: named.Image, Dir: named.Dir}, nil
	}
	if i, ok := b.earlierFrom(v, s.Index); ok {
		return &CopyFrom{Stage: i}, nil
	}
	if err := b.selfRef(n, s, v); err != nil {
		return nil, err
	}
	f := &CopyFrom{Stage: -1, Image: v}
	b.pending = append(b.pending, pendingRef{pos: b.pos(n), what: "COPY --from", ref: v, stage: s, copyFrom: f})
	return f, nil
}

// selfRef rejects a stage reading from itself, with BuildKit's words.
func (b *planner) selfRef(n *bkparser.Node, s *Stage, ref string) error {
	if i, err := strconv.Atoi(ref); (err == nil && i == s.Index) || (s.Name != "" && strings.EqualFold(ref, s.Name)) {
		return &Error{Pos: b.pos(n), Msg: "circular dependency detected on stage: " + stageLabel(s)}
	}
	return nil
}

func stageLabel(s *Stage) string {
	if s.Name != "" {
		return s.Name
	}
	return "stage-" + strconv.Itoa(s.Index)
}

// runMountDeps adds the stages RUN --mount from= reads to the stage's deps
// and returns them by from= value; a stage defined further down is
// refused by resolvePending, as BuildKit refuses it. Like BuildKit, it reads from= as written: variables
// are not allowed there.
func (b *planner) runMountDeps(n *bkparser.Node, s *Stage, run *instructions.RunCommand) (map[string]int, error) {
	stages := map[string]int{}
	for _, m := range instructions.GetMounts(run) {
		if m.From == "" {
			continue
		}
		if i, ok := b.earlierFrom(m.From, s.Index); ok {
			b.addDep(s, i, b.pos(n))
			stages[m.From] = i
			continue
		}
		if err := b.selfRef(n, s, m.From); err != nil {
			return nil, err
		}
		b.pending = append(b.pending, pendingRef{pos: b.pos(n), what: "RUN --mount from", ref: m.From, stage: s, mounts: stages})
	}
	return stages, nil
}

// addDep records that stage s needs stage i, and where it said so.
func (b *planner) addDep(s *Stage, i int, pos Pos) {
	if b.edgePos == nil {
		b.edgePos = map[[2]int]Pos{}
	}
	if _, ok := b.edgePos[[2]int{s.Index, i}]; !ok {
		b.edgePos[[2]int{s.Index, i}] = pos
	}
	for j, d := range s.Deps {
		if d == i {
			return
		}
		if d > i {
			s.Deps = append(s.Deps[:j], append([]int{i}, s.Deps[j:]...)...)
			return
		}
	}
	s.Deps = append(s.Deps, i)
}

// resolvePending turns references to stages defined further down into
// dependencies, as BuildKit does for COPY --from (FROM and RUN --mount
// from= only ever see the stages above them), then refuses cycles.
func (b *planner) resolvePending() error {
	for _, r := range b.pending {
		i, ok := b.stageByName(r.ref)
		if !ok {
			n, err := strconv.Atoi(r.ref)
			if err != nil {
				continue // an image reference
			}
			if n < 0 || n >= len(b.plan.Stages) {
				return &Error{Pos: r.pos, Msg: fmt.Sprintf("%s=%s: there is no stage %d (stages are numbered from 0, and this Dockerfile has %d)", r.what, r.ref, n, len(b.plan.Stages))}
			}
			i = n
		}
		if i == r.stage.Index {
			return &Error{Pos: r.pos, Msg: "circular dependency detected on stage: " + stageLabel(r.stage)}
		}
		if r.copyFrom != nil {
			r.copyFrom.Stage, r.copyFrom.Image = i, ""
		}
		if r.mounts != nil {
			// BuildKit resolves COPY --from across the file, but a RUN
			// mount only from a stage defined before its own.
			return &Error{Pos: r.pos, Msg: fmt.Sprintf("RUN --mount from=%s: stage %s is defined after this one; a RUN mount can read only a stage defined before it", r.ref, stageLabel(b.plan.Stages[i]))}
		}
		b.addDep(r.stage, i, r.pos)
	}
	return b.checkCycles()
}

// checkCycles refuses a dependency cycle between stages. The error is
// placed at the instruction where the cycle leaves the stage it names,
// and lists every edge of the cycle.
func (b *planner) checkCycles() error {
	const (
		unvisited = iota
		onPath
		done
	)
	mark := make([]int, len(b.plan.Stages))
	var path []int
	var visit func(i int) error
	visit = func(i int) error {
		mark[i] = onPath
		path = append(path, i)
		for _, d := range b.plan.Stages[i].Deps {
			switch mark[d] {
			case onPath:
				return b.cycleError(append(path[slices.Index(path, d):], d))
			case unvisited:
				if err := visit(d); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		mark[i] = done
		return nil
	}
	for i := range b.plan.Stages {
		if mark[i] == unvisited {
			if err := visit(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// cycleError describes cycle, a list of stages whose first and last are
// the same: "circular dependency detected on stage: x (x needs y at line
// 2, y needs x at line 4)".
func (b *planner) cycleError(cycle []int) error {
	var edges []string
	for k := 0; k+1 < len(cycle); k++ {
		from, to := b.plan.Stages[cycle[k]], b.plan.Stages[cycle[k+1]]
		edges = append(edges, fmt.Sprintf("%s needs %s at line %d", stageLabel(from), stageLabel(to), b.edgePos[[2]int{from.Index, to.Index}].Line))
	}
	return &Error{
		Pos: b.edgePos[[2]int{cycle[0], cycle[1]}],
		Msg: fmt.Sprintf("circular dependency detected on stage: %s (%s)", stageLabel(b.plan.Stages[cycle[0]]), strings.Join(edges, ", ")),
	}
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
	// Deps may point down the file (COPY --from a later stage), so order
	// by depth-first post-order: dependencies first, and file order among
	// stages that do not depend on each other. The plan has no cycles.
	var out []int
	placed := make([]bool, len(p.Stages))
	var place func(i int)
	place = func(i int) {
		if placed[i] {
			return
		}
		placed[i] = true
		for _, d := range p.Stages[i].Deps {
			place(d)
		}
		out = append(out, i)
	}
	for i, ok := range seen {
		if ok {
			place(i)
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

// repoPath is the repository part of an image reference as written: no
// registry host (which may have capitals), tag or digest.
func repoPath(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	if host, rest, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		return rest
	}
	return ref
}

// dockerfileFrontend reports whether a "# syntax=" image is BuildKit's
// Dockerfile frontend (any version, labs included), whose language
// builder implements.
func dockerfileFrontend(ref string) bool {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	for _, p := range []string{"docker.io/", "index.docker.io/"} {
		ref = strings.TrimPrefix(ref, p)
	}
	return ref == "docker/dockerfile" || ref == "docker/dockerfile-upstream"
}
