// Package parser turns a Dockerfile into a [Plan]: its stages, their bases,
// their steps with source positions, the global ARGs and the stage
// dependency edges. It also reads .dockerignore rules ([Ignore]).
//
// It uses BuildKit's Dockerfile parser, instruction parser and shell
// expander, so grammar and variable expansion follow `docker build`
// exactly. No other package of the module imports BuildKit, and no
// BuildKit type appears in this package's API.
//
// Parsing is done once, up front; the executor never reads Dockerfile text.
// Variable expansion of a step is deferred to [Step.Expand] because the
// environment it needs includes the base image's ENV, which is known only
// when the stage runs. Expand follows BuildKit's dispatch: RUN, CMD,
// ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are kept as
// written; EXPOSE expands and splits into words; a COPY heredoc with an
// unquoted delimiter expands with quotes kept; an ARG expands only its
// default, and not when a build arg replaces it. Each call works on a fresh copy of the instruction, so a Step may be
// expanded any number of times, from several goroutines.
//
// Build args are resolved here, once, and nowhere else (args.go): FROM
// lines, their --platform and COPY --from see the global ARGs (with build
// args applied) and the predefined platform ARGs (BUILDPLATFORM, the
// machine that builds; TARGETARCH, the platform built for; …), as in
// docker; every ARG of a stage carries the value it gives its name
// ([ArgDef.Resolved]); [Plan.ProxyEnv] and [Plan.UnusedArgs] say which
// build args RUN steps see without an ARG and which nothing declares.
//
// Errors are [*Error] values that name the place: "Dockerfile:7: unknown
// instruction: COPPY (did you mean COPY?)". Non-fatal findings (BuildKit's
// parser warnings and the lint rules it runs while parsing, deprecated
// MAINTAINER and "ENV key value", undeclared ARGs in FROM) are in
// [Plan.Warnings] as "Dockerfile:N: Rule: text".
//
// NOTE: where this package departs from BuildKit, on purpose:
//   - COPY --from may name a stage further down the file, by name or
//     index, as in BuildKit (docker's classic builder refused that); FROM
//     and RUN --mount from= see only the stages above them (BuildKit: "stage
//     needs to be defined before current command"). A cycle is an
//     error that lists its edges; an index past the last stage is an error
//     rather than an image named "7".
//   - FROM <n> with n the index of an earlier stage starts from that stage;
//     BuildKit would look for an image named "n".
//   - COPY --from expands global ARGs; BuildKit refuses variables there.
//   - COPY --from in an ONBUILD trigger ([Plan.ParseTrigger]) names an image,
//     never a stage of the building Dockerfile.
//   - Expansion is bounded, where BuildKit's has no bound at all:
//     [MaxWordSize] a word, [MaxHeredocSize] a COPY heredoc,
//     [MaxInstructionSize] an instruction, [MaxEnvSize] the environment an
//     ENV or ARG grows (and the global ARGs), 10,000 "${" a word. The
//     values a word reads are counted as the lexer reads them, so
//     "$A$A$A…" stops growing at the limit, and a word with a
//     ${name/pattern/replacement} is measured before it is expanded. A word
//     whose variables together hold more than the limit is refused even
//     when an operator such as ${A:+x} would drop them.
//   - A NUL byte in a word that is expanded is an error; other bytes that
//     are not UTF-8 become U+FFFD, as in docker, without BuildKit's lexer
//     writing a complaint to standard error.
//
// [Ignore] matches paths as docker does (patternmatcher); a walk passes
// each directory's [MatchInfo] to its children, and asks
// [Ignore.MayIncludeBelow] whether an excluded directory must still be
// entered because a "!" rule may re-include something under it.
package parser
