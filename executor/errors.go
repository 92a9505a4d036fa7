package executor

import (
	"errors"
	"fmt"

	"github.com/builderdev/builder/parser"
)

// StepError is a step that failed: where it is, what it was, and why. Its
// message reads "Dockerfile:12: COPY failed: stat app.py: no such file in
// build context".
type StepError struct {
	Pos         parser.Pos
	Instruction string // upper-case instruction name: "RUN", "COPY"
	Err         error
	// Output holds the last lines a failed RUN printed.
	Output []string
}

func (e *StepError) Error() string {
	var exit *ExitError
	if errors.As(e.Err, &exit) {
		return fmt.Sprintf("%s: %s %s", e.Pos, e.Instruction, exit)
	}
	if pe, ok := e.Err.(*parser.Error); ok {
		return pe.Error() // it names its place already: say it once
	}
	return fmt.Sprintf("%s: %s failed: %v", e.Pos, e.Instruction, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// ExitError is the error of a RUN whose command exited non-zero. Inside a
// StepError it reads "Dockerfile:9: RUN make exited with code 2".
type ExitError struct {
	Command string
	Code    int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s exited with code %d", e.Command, e.Code)
}
