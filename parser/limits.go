package parser

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/builderdev/builder/internal/units"
)

// Limits on what variable expansion may produce. Neither docker nor
// BuildKit has any: a Dockerfile of 41 lines "ARG A2=${A1}${A1}" doubles
// its value on every line and exhausts memory. Each limit is far above
// what a working Dockerfile can use, because the kernel refuses more when
// a RUN step is started: one string of an environment or argument list is
// at most MAX_ARG_STRLEN (128 KiB), and all of them together at most a
// quarter of the stack limit, never more than 6 MiB.
const (
	// MaxWordSize caps one expanded word: a value, a path, a name.
	MaxWordSize = 1 << 20
	// MaxHeredocSize caps the expanded contents of a COPY heredoc,
	// which is a file rather than a word: as large as a Dockerfile.
	MaxHeredocSize = maxDockerfileSize
	// MaxInstructionSize caps everything one instruction expands to.
	MaxInstructionSize = maxDockerfileSize
	// MaxEnvSize caps the environment of a stage, "KEY=VALUE" strings
	// counted: its ARGs and ENV, the base image's ENV included. The
	// global ARGs and build args that FROM lines see are capped alike.
	MaxEnvSize = 8 << 20
	// maxBraces caps the "${" of one word. The lexer recurses once for
	// each nested one; a deeper nesting than this never occurs in a real
	// Dockerfile and would only grow the goroutine's stack.
	maxBraces = 10000
)

// replaceOp finds "${name/", a pattern replacement, as the lexer reads a
// name: letters, digits and '_', or one special parameter. It is the one
// operator whose result may be longer than the values it reads (each
// match of the pattern becomes the replacement), so words that have it
// are measured by [sizer] before they are expanded.
var replaceOp = regexp.MustCompile(`\$\{([\pL\pN_]*|[@*#?\-$!0])/`)

// guard is one word's expansion under a size limit. It gives the lexer
// the environment through Get and counts what it hands out; once the
// limit is reached it hands out empty values, so a word such as
// "$A$A$A…" stops growing there, and the word is refused afterwards.
type guard struct {
	env   envList
	m     map[string]string // built on demand when env is large
	gets  int
	limit int
	spent int
	over  bool
}

func (g *guard) Get(key string) (string, bool) {
	v, ok := g.lookup(key)
	if !ok {
		return "", false
	}
	if g.spent += len(v); g.spent > g.limit {
		g.over = true
		return "", true
	}
	return v, true
}

// lookup finds key in env. A long environment is indexed once a word has
// looked up enough variables, so that expanding a long word costs time
// linear in the word, not in the word times the environment.
func (g *guard) lookup(key string) (string, bool) {
	if g.m == nil {
		if g.gets++; g.gets < 32 || len(g.env) < 32 {
			return g.env.Get(key)
		}
		g.m = make(map[string]string, len(g.env))
		for _, kv := range g.env {
			k, v, _ := strings.Cut(kv, "=")
			g.m[k] = v
		}
	}
	v, ok := g.m[key]
	return v, ok
}

func (g *guard) Keys() []string { return g.env.Keys() }

// expandWord runs lex, whose escape token is escape, on word with env,
// refusing a result longer than limit; what names the word in errors
// ("ARG A12"). The result and the memory used on the way stay within a
// small multiple of limit plus the length of the word.
func expandWord(lex *shell.Lex, escape rune, word string, env envList, limit int, what string) (shell.ProcessWordResult, error) {
	tooLong := fmt.Errorf("%s: expanded value is longer than %s", what, units.Limit(int64(limit)))
	if strings.IndexByte(word, 0) >= 0 {
		return shell.ProcessWordResult{}, fmt.Errorf("%s: a NUL byte in %s", what, quoteShort(word))
	}
	if n := strings.Count(word, "${"); n > maxBraces {
		return shell.ProcessWordResult{}, fmt.Errorf("%s: %d ${…} in one word, more than %d", what, n, maxBraces)
	}
	word = validUTF8(word)
	g := &guard{env: env, limit: limit}
	if replaceOp.MatchString(word) {
		z := sizer{s: word, escape: escape, quotes: !lex.SkipProcessQuotes, env: g, limit: limit}
		if n := z.measure(); n > limit || z.peak > limit {
			return shell.ProcessWordResult{}, tooLong
		}
	}
	res, err := lex.ProcessWordWithMatches(word, g)
	if g.over || len(res.Result) > limit {
		return shell.ProcessWordResult{}, tooLong
	}
	return res, err
}

// validUTF8 replaces each byte that is not part of valid UTF-8 with
// U+FFFD, which is what the lexer's text/scanner makes of it too; but the
// scanner also prints an error to standard error for each, and a core
// package never prints.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

// envSize is the size of an environment as the kernel counts it: each
// "KEY=VALUE" string and its terminating NUL.
func envSize(env []string) int {
	n := 0
	for _, kv := range env {
		n += len(kv) + 1
	}
	return n
}

// CheckEnvSize returns an error when env, a "KEY=VALUE" list, is larger
// than [MaxEnvSize].
func CheckEnvSize(env []string) error {
	if envSize(env) > MaxEnvSize {
		return errEnvTooLarge
	}
	return nil
}

var errEnvTooLarge = fmt.Errorf("the environment (ARG and ENV values, the base image's included) would be larger than %s", units.Limit(int64(MaxEnvSize)))

// size formats a limit: "1 MiB".

// quoteShort quotes s for a message, shortened to its first 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		cut := 40
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
