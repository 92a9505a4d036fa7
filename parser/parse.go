package parser

import (
	"errors"
	"io"
)

// Parse reads a Dockerfile and returns its checked Plan. Errors are *Error
// values naming the file and line.
func Parse(r io.Reader, opts Options) (*Plan, error) {
	return nil, errors.New("parser: not implemented")
}

// ParseTrigger parses one ONBUILD trigger (e.g. "COPY . /app") as a Step,
// so that triggers recorded in a base image can run in a later build.
func ParseTrigger(expr string, pos Pos, escape rune) (Step, error) {
	return Step{}, errors.New("parser: not implemented")
}

func (p *Plan) needed(target int) []int { return nil }
