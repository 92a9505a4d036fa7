package parser

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		opts      Options
		line      int // Pos.Line of the *Error; 0 for whole-file errors
		want      string
	}{
		{"unknown instruction", "FROM a\nRUN x\nCOPPY x y\n", Options{}, 3,
			"Dockerfile:3: unknown instruction: COPPY (did you mean COPY?)"},
		{"unknown instruction, file name", "FROM a\nFROMM b\n", Options{Filename: "build/Containerfile"}, 2,
			"build/Containerfile:2: unknown instruction: FROMM (did you mean FROM?)"},
		{"instruction before FROM", "# comment\n\nRUN x\nFROM a\n", Options{}, 3,
			"Dockerfile:3: RUN before the first FROM: only ARG may come before FROM"},
		{"only ARGs", "ARG A=1\n", Options{}, 0,
			"Dockerfile: no build stage in the Dockerfile: it needs a FROM"},
		{"empty", "", Options{}, 0, "Dockerfile: the Dockerfile cannot be empty"},
		{"blank", "   \n\t\n", Options{}, 0, "Dockerfile: the Dockerfile cannot be empty"},
		{"comments only", "# c\n\n# d\n", Options{}, 0, "Dockerfile: file with no instructions"},
		{"unknown target", "FROM a AS x\nFROM b\n", Options{Target: "missing"}, 0,
			`Dockerfile: target stage "missing" could not be found`},
		{"unknown target, with a suggestion", "FROM a AS build\nFROM b AS test\n", Options{Target: "tset"}, 0,
			`Dockerfile: target stage "tset" could not be found (did you mean test?)`},
		{"unknown flag", "FROM a\nCOPY --frm=x a b\n", Options{}, 2,
			"Dockerfile:2: unknown flag: --frm (did you mean from?)"},
		{"flag without value", "FROM a\nCOPY --from a b\n", Options{}, 2,
			"Dockerfile:2: missing a value on flag: --from"},
		{"bad boolean flag", "FROM a\nCOPY --link=maybe a b\n", Options{}, 2,
			"Dockerfile:2: expecting boolean value for flag --link, not: maybe"},
		{"COPY without destination", "FROM a\nCOPY a\n", Options{}, 2,
			"Dockerfile:2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"},
		{"duplicate stage name", "FROM a AS x\nRUN true\nFROM b AS X\n", Options{}, 3,
			`Dockerfile:3: duplicate stage name "x" (first defined at line 1)`},
		{"invalid stage name", "FROM a AS 1x\n", Options{}, 1,
			`Dockerfile:1: invalid name for build stage: "1x", name can't start with a number or contain symbols`},
		{"FROM arity", "FROM a b\n", Options{}, 1, "Dockerfile:1: FROM requires either one or three arguments"},
		{"COPY --from the current stage by index", "FROM a AS x\nCOPY --from=0 a b\n", Options{}, 2,
			"Dockerfile:2: circular dependency detected on stage: x"},
		{"COPY --from the current stage by name", "FROM a AS x\nCOPY --from=X a b\n", Options{}, 2,
			"Dockerfile:2: circular dependency detected on stage: x"},
		{"COPY --from an unnamed current stage", "FROM a\nFROM b\nCOPY --from=1 a b\n", Options{}, 3,
			"Dockerfile:3: circular dependency detected on stage: stage-1"},
		{"RUN --mount from the current stage", "FROM a AS x\nRUN --mount=from=x,target=/x a\n", Options{}, 2,
			"Dockerfile:2: circular dependency detected on stage: x"},
		{"COPY --from the current stage by a padded index", "FROM a AS x\nCOPY --from=00 a b\n", Options{}, 2,
			"Dockerfile:2: circular dependency detected on stage: x"},
		{"COPY --from a negative index", "FROM a\nCOPY --from=-1 a b\n", Options{}, 2,
			"Dockerfile:2: COPY --from=-1: there is no stage -1 (stages are numbered from 0, and this Dockerfile has 1)"},
		{"COPY --from a stage index past the end", "FROM a\nCOPY --from=1 a b\n", Options{}, 2,
			"Dockerfile:2: COPY --from=1: there is no stage 1 (stages are numbered from 0, and this Dockerfile has 1)"},
		{"a cycle through a later stage", "FROM a AS x\nCOPY --from=y a b\nFROM a AS y\nCOPY --from=x a b\n", Options{}, 2,
			"Dockerfile:2: circular dependency detected on stage: x (x needs y at line 2, y needs x at line 4)"},
		{"a RUN mount of a later stage", "FROM a AS x\nRUN --mount=from=y,target=/y true\nFROM x AS y\n", Options{}, 2,
			"Dockerfile:2: RUN --mount from=y: stage y is defined after this one; a RUN mount can read only a stage defined before it"},
		{"BuildKit's three-stage cycle", "FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\nFROM busybox AS stage1\nCOPY --from=stage0 f2 /sub/\nFROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\n", Options{}, 2,
			"Dockerfile:2: circular dependency detected on stage: stage0 (stage0 needs stage2 at line 2, stage2 needs stage1 at line 6, stage1 needs stage0 at line 4)"},
		{"RUN --mount from a variable", "FROM a\nRUN --mount=from=$X,target=/x a\n", Options{}, 2,
			"Dockerfile:2: 'from' doesn't support variable expansion, define alias stage instead"},
		{"RUN --network", "FROM a\nRUN --network=bogus a\n", Options{}, 2, `Dockerfile:2: invalid network mode "bogus"`},
		{"blank ARG name", "FROM a\nARG =x\n", Options{}, 2, "Dockerfile:2: ARG names can not be blank"},
		{"ARG without name", "FROM a\nARG\n", Options{}, 2, "Dockerfile:2: ARG requires at least one argument"},
		{"ENV without value", "FROM a\nENV A\n", Options{}, 2, "Dockerfile:2: ENV must have two arguments"},
		{"blank ENV name", "FROM a\nENV =x\n", Options{}, 2, "Dockerfile:2: ENV names can not be blank"},
		{"unterminated heredoc", "FROM a\nRUN <<EOF\nhello\n", Options{}, 2, "Dockerfile:2: unterminated heredoc"},
		{"bad escape directive", "# escape=x\nFROM a\n", Options{}, 1,
			"Dockerfile:1: invalid escape token 'x' does not match ` or \\"},
		{"two escape directives", "# escape=\\\n# escape=`\nFROM a\n", Options{}, 2,
			"Dockerfile:2: only one escape parser directive can be used"},
		{"blank base", "ARG E=\nFROM ${E}\n", Options{}, 2, "Dockerfile:2: base name (${E}) should not be blank"},
		{"global ARG expansion", "ARG X=${Y:?needed}\nFROM a\n", Options{}, 1,
			`Dockerfile:1: failed to process "${Y:?needed}": Y: needed`},
		{"FROM expansion", "FROM ${Y:?needed}\n", Options{}, 1,
			`Dockerfile:1: failed to process "${Y:?needed}": Y: needed`},
		{"empty platform", "FROM --platform=$NOPE a\n", Options{}, 1,
			"Dockerfile:1: empty platform value from expression $NOPE"},
		{"HEALTHCHECK interval", "FROM a\nHEALTHCHECK --interval=1x CMD a\n", Options{}, 2,
			`Dockerfile:2: time: unknown unit "x" in duration "1x"`},
		{"HEALTHCHECK retries", "FROM a\nHEALTHCHECK --retries=-1 CMD a\n", Options{}, 2,
			"Dockerfile:2: --retries cannot be negative (-1)"},
		{"HEALTHCHECK NONE arguments", "FROM a\nHEALTHCHECK NONE x\n", Options{}, 2,
			"Dockerfile:2: HEALTHCHECK NONE takes no arguments"},
		{"ONBUILD ONBUILD", "FROM a\nONBUILD ONBUILD RUN x\n", Options{}, 2,
			"Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"ONBUILD FROM", "FROM a\nONBUILD FROM x\n", Options{}, 2,
			"Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"},
		{"SHELL not JSON", "FROM a\nSHELL sh -c\n", Options{}, 2,
			"Dockerfile:2: SHELL requires the arguments to be in JSON form"},
		{"empty VOLUME", "FROM a\nVOLUME [\"\"]\n", Options{}, 2,
			"Dockerfile:2: VOLUME specified can not be an empty string"},
		{"USER arity", "FROM a\nUSER\n", Options{}, 2, "Dockerfile:2: USER requires exactly one argument"},
		{"error on a continued line", "FROM a\nCOPY \\\n  --frm=x \\\n  a b\n", Options{}, 2,
			"Dockerfile:2: unknown flag: --frm (did you mean from?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.src), tt.opts)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tt.src, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %T %v, want a *Error", tt.src, err, err)
			}
			if err.Error() != tt.want || e.Pos.Line != tt.line {
				t.Errorf("Parse(%q) = %q at line %d, want %q at line %d", tt.src, err.Error(), e.Pos.Line, tt.want, tt.line)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Parse(%q) error has several lines: %q", tt.src, err.Error())
			}
		})
	}
}

// TestCheckDirective: "# check=" skips rules or turns their warnings
// into an error, as BuildKit's linter options do.
func TestCheckDirective(t *testing.T) {
	body := "FROM alpine\nENV A 1\nMAINTAINER me\n"
	for _, tc := range []struct {
		directive string
		warnings  []string
		err       string
	}{
		{"", []string{
			"Dockerfile:2: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
			"Dockerfile:3: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label",
		}, ""},
		{"# check=skip=LegacyKeyValueFormat\n", []string{
			"Dockerfile:4: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label",
		}, ""},
		{"# check=skip=all\n", nil, ""},
		{"# check=error=true;skip=MaintainerDeprecated\n", nil,
			"Dockerfile: lint violation found for rules: LegacyKeyValueFormat (Dockerfile:3: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format)"},
		{"# check=error=true\n", nil, "Dockerfile: lint violation found for rules: LegacyKeyValueFormat, MaintainerDeprecated ("},
		{"# check=bogus\n", nil, "Dockerfile:1: check directive: invalid check option \"bogus\""},
	} {
		p, err := Parse(strings.NewReader(tc.directive+body), Options{})
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.directive, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.directive, err)
			continue
		}
		if strings.Join(p.Warnings, "\n") != strings.Join(tc.warnings, "\n") {
			t.Errorf("%q: warnings\n%s\nwant\n%s", tc.directive, strings.Join(p.Warnings, "\n"), strings.Join(tc.warnings, "\n"))
		}
	}
}

// TestSyntaxDirective: BuildKit's Dockerfile frontend in any version is
// the language builder speaks; another frontend is ignored with a warning.
func TestSyntaxDirective(t *testing.T) {
	for _, tc := range []struct {
		syntax string
		warn   bool
	}{
		{"docker/dockerfile:1", false},
		{"docker/dockerfile:1.7-labs", false},
		{"docker.io/docker/dockerfile:1@sha256:" + strings.Repeat("a", 64), false},
		{"docker/dockerfile-upstream:master", false},
		{"tonistiigi/dockerfile:runmount", true},
		{"example.com/frontends/custom:2", true},
	} {
		p, err := Parse(strings.NewReader("# syntax="+tc.syntax+"\nFROM scratch\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		warned := len(p.Warnings) == 1 && strings.Contains(p.Warnings[0], "the directive is ignored")
		if warned != tc.warn || p.Syntax != tc.syntax {
			t.Errorf("syntax=%s: warnings %q, Syntax %q; want a warning: %v", tc.syntax, p.Warnings, p.Syntax, tc.warn)
		}
	}
}

// TestMountFlagErrors: a bad --mount option is an error of the Dockerfile,
// found when it is read, with BuildKit's words; one with a variable waits
// for the step's environment.
func TestMountFlagErrors(t *testing.T) {
	for _, tc := range []struct{ run, want string }{
		{"RUN --mount=type=cahce,target=/x true", `Dockerfile:2: unsupported mount type "cahce"`},
		{"RUN --mount=type=cache,target=/x,sharing=sometimes true", `Dockerfile:2: unsupported sharing value "sometimes"`},
		{"RUN --mount=type=tmpfs,target=/x,uid=1 true", `Dockerfile:2: uid not allowed for "tmpfs" type mounts`},
		{"RUN --mount=type=cache,target=/x,colour=red true", `Dockerfile:2: unexpected key 'colour' in 'colour=red'`},
		{"RUN --mount=type=$T,target=/x true", ""},
	} {
		_, err := Parse(strings.NewReader("FROM a\n"+tc.run+"\n"), Options{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want no error before the step's environment is known", tc.run, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %s", tc.run, err, tc.want)
		}
	}
}
