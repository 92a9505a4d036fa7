package executor

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// chmodFunc is a COPY or ADD --chmod: the mode a copied file gets from
// the one it had.
type chmodFunc func(mode os.FileMode) os.FileMode

// parseChmod reads --chmod as BuildKit does: an octal mode up to 07777,
// or chmod(1)'s symbolic modes ("u+x,go-w", "a=rX", "g=u"), applied to
// each file's own mode.
func parseChmod(s string) (chmodFunc, error) {
	if n, err := strconv.ParseUint(s, 8, 32); err == nil || isNumeric(s) {
		if err != nil || n > 0o7777 {
			return nil, fmt.Errorf("invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", s)
		}
		bits := unixMode(uint32(n))
		return func(m os.FileMode) os.FileMode { return m&^permBits | bits }, nil
	}
	clauses, err := parseSymbolic(s)
	if err != nil {
		return nil, fmt.Errorf("invalid --chmod=%s: %w (want an octal mode, or symbolic modes such as u+x,go-w)", s, err)
	}
	return func(m os.FileMode) os.FileMode {
		bits := unixPerm(m)
		for _, c := range clauses {
			bits = c.apply(bits, m.IsDir())
		}
		return m&^permBits | unixMode(bits)
	}, nil
}

// permBits are the bits --chmod sets.
const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func isNumeric(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// symbolic is one clause of a symbolic mode: who, then actions.
type symbolic struct {
	who     uint32 // the permission bits of the classes named (0777 for all)
	actions []symbolicAction
}

type symbolicAction struct {
	op    byte   // '+', '-' or '='
	perms string // "rwxXst", or one of "u", "g", "o" to copy
}

func parseSymbolic(s string) ([]symbolic, error) {
	var out []symbolic
	for _, clause := range strings.Split(s, ",") {
		c := symbolic{}
		i := 0
		for ; i < len(clause) && strings.IndexByte("ugoa", clause[i]) >= 0; i++ {
			c.who |= map[byte]uint32{'u': 0o700, 'g': 0o070, 'o': 0o007, 'a': 0o777}[clause[i]]
		}
		if c.who == 0 {
			c.who = 0o777
		}
		if i == len(clause) {
			return nil, fmt.Errorf("%q has no operator", clause)
		}
		for i < len(clause) {
			op := clause[i]
			if strings.IndexByte("+-=", op) < 0 {
				return nil, fmt.Errorf("%q: unexpected %q", clause, op)
			}
			j := i + 1
			for j < len(clause) && strings.IndexByte("+-=", clause[j]) < 0 {
				j++
			}
			perms := clause[i+1 : j]
			if strings.Trim(perms, "rwxXst") != "" && !(len(perms) == 1 && strings.Contains("ugo", perms)) {
				return nil, fmt.Errorf("%q: unknown permission in %q", clause, perms)
			}
			c.actions = append(c.actions, symbolicAction{op: op, perms: perms})
			i = j
		}
		out = append(out, c)
	}
	return out, nil
}

// apply changes the unix mode bits m (of a directory when dir).
func (c symbolic) apply(m uint32, dir bool) uint32 {
	for _, a := range c.actions {
		var v uint32
		switch a.perms {
		case "u":
			v = spread((m >> 6) & 7)
		case "g":
			v = spread((m >> 3) & 7)
		case "o":
			v = spread(m & 7)
		default:
			for _, p := range a.perms {
				switch p {
				case 'r':
					v |= 0o444
				case 'w':
					v |= 0o222
				case 'x':
					v |= 0o111
				case 'X':
					if dir || m&0o111 != 0 {
						v |= 0o111
					}
				case 's':
					if c.who&0o700 != 0 {
						v |= 0o4000
					}
					if c.who&0o070 != 0 {
						v |= 0o2000
					}
				case 't':
					v |= 0o1000
				}
			}
		}
		mask := c.who | specialsOf(c.who)
		v &= mask
		switch a.op {
		case '+':
			m |= v
		case '-':
			m &^= v
		case '=':
			m = m&^mask | v
		}
	}
	return m
}

// spread copies three permission bits to every class.
func spread(b uint32) uint32 { return b<<6 | b<<3 | b }

// specialsOf are the setuid, setgid and sticky bits the classes in who
// may change.
func specialsOf(who uint32) uint32 {
	var s uint32
	if who&0o700 != 0 {
		s |= 0o4000
	}
	if who&0o070 != 0 {
		s |= 0o2000
	}
	if who&0o007 != 0 {
		s |= 0o1000
	}
	return s
}
