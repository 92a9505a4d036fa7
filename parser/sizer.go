package parser

import (
	"unicode"
	"unicode/utf8"
)

// sizer computes, without building it, an upper bound of the length of
// what BuildKit's shell lexer (frontend/dockerfile/shell/lex.go) makes of
// a word. It follows the lexer's grammar step by step, so that each
// ${...} ends where the lexer ends it, and counts sizes instead of
// building strings: literal text at most twice (the lexer may keep an
// escape character beside the one it escapes), a variable as its value,
// and ${name/pattern/replacement} as the value with every possible match
// replaced: len(v) + (len(v)+1)*len(replacement), since a pattern that
// matches the empty string matches at every position. FuzzSizer checks
// that the bound holds against the lexer itself.
type sizer struct {
	s      string
	i      int
	escape rune
	quotes bool   // the lexer processes quotes (not SkipProcessQuotes)
	env    *guard // only for lookups: nothing is charged
	limit  int    // sizes saturate just above it
	peak   int    // the largest intermediate result, patterns included
	failed bool
}

const eof = -1

func (z *sizer) measure() int {
	n, _ := z.stopOn(eof)
	return n
}

func (z *sizer) peek() rune {
	if z.i >= len(z.s) {
		return eof
	}
	r, _ := utf8.DecodeRuneInString(z.s[z.i:])
	return r
}

func (z *sizer) next() rune {
	if z.i >= len(z.s) {
		return eof
	}
	r, n := utf8.DecodeRuneInString(z.s[z.i:])
	z.i += n
	return r
}

// add and mul saturate at limit+1, which is all that matters once over.
func (z *sizer) add(a, b int) int {
	if s := a + b; s <= z.limit {
		return s
	}
	return z.limit + 1
}

func (z *sizer) mul(a, b int) int {
	if a != 0 && b > (z.limit+1)/a {
		return z.limit + 1
	}
	return z.add(a*b, 0)
}

func (z *sizer) value(name string) int {
	v, _ := z.env.lookup(name)
	if !utf8.ValidString(v) {
		// The lexer may turn each stray byte (from a base image's ENV,
		// say) into U+FFFD, three bytes.
		return z.mul(len(v), 3)
	}
	return z.add(len(v), 0)
}

// literal is the most a literal rune adds to the result.
func literal(r rune) int { return 2 * utf8.RuneLen(r) }

// stopOn mirrors processStopOn: it reads up to stop, or to the end of the
// word when stop is eof, and reports whether stop was found.
func (z *sizer) stopOn(stop rune) (int, bool) {
	n := 0
loop:
	for z.peek() != eof {
		ch := z.peek()
		switch {
		case stop != eof && ch == stop:
			z.next()
			return n, true
		case ch == '$':
			n = z.add(n, z.dollar())
		case z.quotes && ch == '\'':
			n = z.add(n, z.quoted('\'', false))
		case z.quotes && ch == '"':
			n = z.add(n, z.quoted('"', true))
		default:
			// '<' and "<<" with the blanks after it (a possible heredoc)
			// come out as they are, like any other literal text.
			ch = z.next()
			if ch == z.escape {
				n = z.add(n, literal(ch))
				if ch = z.next(); ch == eof {
					break loop
				}
			}
			n = z.add(n, literal(ch))
		}
		if n > z.peak {
			z.peak = n
		}
	}
	if stop != eof {
		z.failed = true
	}
	return n, stop == eof
}

// quoted mirrors processSingleQuote and processDoubleQuote; only double
// quotes expand variables.
func (z *sizer) quoted(q rune, expand bool) int {
	n := literal(z.next())
	for {
		switch ch := z.peek(); {
		case ch == eof:
			z.failed = true
			return n
		case ch == q:
			z.next()
			return z.add(n, literal(q))
		case expand && ch == '$':
			n = z.add(n, z.dollar())
		default:
			ch = z.next()
			if expand && ch == z.escape {
				switch z.peek() {
				case '"', '$', z.escape:
					n = z.add(n, literal(ch))
					ch = z.next()
				}
			}
			n = z.add(n, literal(ch))
		}
	}
}

// dollar mirrors processDollar.
func (z *sizer) dollar() int {
	z.next()
	if z.peek() != '{' {
		name := z.name()
		if name == "" {
			return 1
		}
		return z.value(name)
	}
	z.next()
	switch z.peek() {
	case eof, '{', '}', ':':
		z.failed = true
		return 0
	}
	name := z.name()
	op := z.next()
	switch op {
	case '}':
		return z.value(name)
	case ':':
		op = z.next()
		fallthrough
	case '+', '-', '?', '#', '%':
		word, ok := z.stopOn('}')
		if !ok {
			return 0
		}
		v := z.value(name)
		switch op {
		case '-':
			return max(word, v)
		case '+':
			return word
		case '?', '#', '%':
			return v // an error message instead holds word, bounded alike
		}
		z.failed = true
		return 0
	case '/':
		if z.peek() == '/' {
			z.next()
		}
		pattern, ok := z.stopOn('/')
		if !ok {
			return 0
		}
		repl, ok := z.stopOn('}')
		if !ok {
			return 0
		}
		v := z.value(name)
		n := z.add(v, z.mul(v+1, repl))
		z.peak = max(z.peak, pattern, repl, n)
		return n
	}
	z.failed = true
	return 0
}

// name mirrors processName: digits, or one special parameter, or
// letters, digits and '_'.
func (z *sizer) name() string {
	start := z.i
	for z.peek() != eof {
		ch := z.peek()
		if z.i == start && unicode.IsDigit(ch) {
			for unicode.IsDigit(z.peek()) {
				z.next()
			}
			return z.s[start:z.i]
		}
		if z.i == start && isSpecialParam(ch) {
			z.next()
			return z.s[start:z.i]
		}
		if !unicode.IsLetter(ch) && !unicode.IsDigit(ch) && ch != '_' {
			break
		}
		z.next()
	}
	return z.s[start:z.i]
}

func isSpecialParam(ch rune) bool {
	switch ch {
	case '@', '*', '#', '?', '-', '$', '!', '0':
		return true
	}
	return false
}
