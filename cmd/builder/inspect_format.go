package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/template"
	"unicode"
)

// templateFuncs are the functions docker's --format templates have
// (docker/cli templates.basicFunctions), so that scripts written for
// docker run unchanged.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(b.String()), nil
	},
	"split": strings.Split,
	"join":  join,
	"title": func(s string) string {
		r := []rune(s)
		if len(r) > 0 {
			r[0] = unicode.ToUpper(r[0])
		}
		return string(r)
	},
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(s string, left, right int) string {
		return strings.Repeat(" ", left) + s + strings.Repeat(" ", right)
	},
	"truncate": func(s string, n int) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n])
		}
		return s
	},
	"println": func(args ...any) string { return fmt.Sprintln(args...) },
}

// join is strings.Join for the lists of a JSON document too, whose
// elements are of type any.
func join(list any, sep string) (string, error) {
	switch l := list.(type) {
	case []string:
		return strings.Join(l, sep), nil
	case []any:
		s := make([]string, len(l))
		for i, x := range l {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, sep), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("join: %T is not a list", list)
}

// parseFormat reads a --format template; an error is the command line's.
func parseFormat(text string) (*template.Template, error) {
	t, err := template.New("format").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, usagef("invalid --format %q: %v", text, err)
	}
	return t, nil
}

// executeJSON runs t on v as docker inspect does: on v's JSON form, read
// back with numbers kept as written, so that fields have their JSON
// names ({{.Id}}, {{.Config.Env}}) and sizes print as integers.
func executeJSON(w io.Writer, t *template.Template, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, generic); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	b.WriteByte('\n')
	_, err = w.Write(b.Bytes())
	return err
}
