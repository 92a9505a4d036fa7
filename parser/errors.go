package parser

import (
	"errors"
	"regexp"
	"strings"

	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

var parseErrorPrefix = regexp.MustCompile(`^dockerfile parse error on line \d+: `)

// toError turns a BuildKit error into an *Error with the line it names.
func toError(file string, err error) *Error {
	pos := Pos{File: file}
	msg := parseErrorPrefix.ReplaceAllString(err.Error(), "")
	var le *bkparser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		r := le.Locations[0]
		pos.Line, pos.EndLine = r[0].Start.Line, r[len(r)-1].End.Line
		// BuildKit counts lines from 0 for errors in parser directives.
		if strings.HasPrefix(msg, "invalid escape token") || strings.HasPrefix(msg, "only one ") {
			pos.Line, pos.EndLine = pos.Line+1, pos.EndLine+1
		}
	}
	if msg == "file with no instructions" {
		// A whole-file error: a line would point at a comment.
		pos = Pos{File: file}
	}
	return &Error{Pos: pos, Msg: msg}
}

// nodeError is toError with the node's own line when the error has none.
func (b *planner) nodeError(n *bkparser.Node, err error) *Error {
	e := toError(b.plan.File, err)
	if e.Pos.Line == 0 {
		e.Pos = b.pos(n)
	}
	return e
}
