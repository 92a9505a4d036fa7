// Package parser turns a Dockerfile into a [Plan]: its stages, their bases,
// their steps with source positions, the global ARGs and the stage
// dependency edges. It also reads .dockerignore rules ([Ignore]).
//
// It uses BuildKit's Dockerfile parser, instruction parser and shell
// expander, so grammar and variable expansion follow `docker build`
// exactly. No other package of the module imports BuildKit.
//
// Parsing is done once, up front; the executor never reads Dockerfile text.
// Variable expansion of a step is deferred to [Step.Expand] because the
// environment it needs includes the base image's ENV, which is known only
// when the stage runs.
//
// Errors are [*Error] values that name the place: "Dockerfile:7: unknown
// instruction: COPPY".
package parser
