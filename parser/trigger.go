package parser

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// ParseTrigger parses one ONBUILD trigger (e.g. "COPY . /app") as a Step,
// so that triggers recorded in a base image can run in a later build of
// p. The step and its errors carry pos, the place of the FROM that runs
// it; an ARG in it resolves with p's build args and global ARGs, as the
// Dockerfile's own ARGs do.
func (p *Plan) ParseTrigger(expr string, pos Pos) (Step, error) {
	directive := ""
	if p.Escape == '`' {
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
	name := strings.ToUpper(n.Value)
	c, ok := v.(instructions.Command)
	switch {
	case !ok || name == "FROM" || name == "MAINTAINER":
		return Step{}, &Error{Pos: pos, Msg: fmt.Sprintf("%s isn't allowed as an ONBUILD trigger", name)}
	case name == "ONBUILD":
		return Step{}, &Error{Pos: pos, Msg: "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"}
	}
	b := &planner{plan: &Plan{File: pos.File, scope: p.scope}, escape: res.EscapeToken}
	step := Step{Pos: pos, Name: name, Text: sourceText(n, c)}
	var refs stageRefs
	if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
		// The base image's stages are gone: --from names an image here.
		refs.copyFrom = &CopyFrom{Stage: -1, Image: cp.From}
	}
	step.expand = b.expander(n, pos, refs)
	return step, nil
}
