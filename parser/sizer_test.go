package parser

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// sizerEnv makes an environment from fuzzed text: "A=…", "B=…", … one a
// line, plus a value for a few special parameters.
func sizerEnv(vals string) envList {
	env := envList{"@=at", "1=one"}
	for i, v := range strings.Split(vals, "\n") {
		if i >= 6 {
			break
		}
		env = append(env, string(rune('A'+i))+"="+v)
	}
	return env
}

// checkBound runs the real lexer on word and checks the sizer's bound
// against it: never below the result's length, and never a failure where
// the lexer succeeds (which would mean the two read the word differently).
func checkBound(t *testing.T, word string, env envList, escape rune, raw bool) {
	t.Helper()
	if strings.IndexByte(word, 0) >= 0 || strings.Count(word, "${") > maxBraces {
		return // refused before the lexer runs
	}
	word = validUTF8(word)
	z := sizer{s: word, escape: escape, quotes: !raw, env: &guard{env: env}, limit: 1 << 40}
	bound := z.measure()
	if bound > 1<<20 || z.peak > 1<<20 {
		return // too large to build here, which is the point
	}
	lex := shell.NewLex(escape)
	lex.SkipProcessQuotes = raw
	res, err := lex.ProcessWordWithMatches(word, env)
	if err != nil {
		return
	}
	if z.failed {
		t.Fatalf("sizer fails %q (escape %q, raw %v) where the lexer gives %q", word, escape, raw, res.Result)
	}
	if len(res.Result) > bound {
		t.Fatalf("%q (escape %q, raw %v) expands to %d bytes %q, over the bound %d", word, escape, raw, len(res.Result), res.Result, bound)
	}
}

var sizerSeeds = []string{
	`plain`, `$A$B`, `${A}x${B}`, `${A:-$B}`, `${A:+${B}}`, `${A-x}`, `${A?msg}`, `${A%%*.}`, `${A#?}`,
	`${A/x/y}`, `${A//x/$B}`, `${A//}`, `${A///}`, `${A//*/$B$B}`, `${A//?/${B//?/$C}}`,
	`"${A//x/y}"`, `'${A//x/y}'`, `"a\"b${A//x/$B}"`, `"\"" ${A//x/$B}`, "\"a`\"${A//x/$B}\"", `"\"${A//"/x}\""`, `"\${A//x/y}"`, `\${A//x/y}`, "`${A//x/y}`",
	`${A/\}/x}`, `${A/\//x}`, `${A/'}'/$B}`, `${A/"}"/$B}`, `${@/t/$A}`, `${1/o/$B}`, `${/x/$A}`,
	`${A//x/<<  $B}`, `<<EOF`, `${A:/x}`, `${A:#x}`, `${A`, `${A/x`, `${A/x/y`, `${`, `${}`, `$`, `a\`,
	`${Ä//x/$B}`, `${A_1//x/$B}`, "\xff${A//\xfe/$B}", `${A//\\/$B}`, `${A//["x"]/$B}`,
}

func TestSizerBound(t *testing.T) {
	env := sizerEnv("xyzxyz\nB\"b'}/\n\\\\\n")
	for _, w := range sizerSeeds {
		for _, esc := range []rune{'\\', '`'} {
			checkBound(t, w, env, esc, false)
		}
		checkBound(t, w, env, '\\', true)
	}
}

// FuzzSizer checks the sizer's bound against BuildKit's lexer on any
// word and environment, with either escape token and in heredoc mode.
func FuzzSizer(f *testing.F) {
	for _, w := range sizerSeeds {
		f.Add(w, "xyzxyz\nB\"b'}/\n")
	}
	f.Fuzz(func(t *testing.T, word, vals string) {
		env := sizerEnv(vals)
		checkBound(t, word, env, '\\', false)
		checkBound(t, word, env, '`', false)
		checkBound(t, word, env, '\\', true)
	})
}
