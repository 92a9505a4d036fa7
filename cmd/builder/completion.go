package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

var cmdCompletion = &command{
	Name:  "completion",
	Args:  "bash|zsh|fish",
	Short: "Print a shell completion script",
	Long: `
Completion prints a script that completes builder's commands and their
flags in bash, zsh or fish, made from the same command table as --help.
Load it in the shell's startup file, or install it where the shell looks
for completions.`,
	Example: `
builder completion bash > /etc/bash_completion.d/builder  # or source <(builder completion bash) in ~/.bashrc
builder completion zsh > "${fpath[1]}/_builder"
builder completion fish > ~/.config/fish/completions/builder.fish`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 1, "shell (bash, zsh or fish)"); err != nil {
				return err
			}
			write := map[string]func(io.Writer, *environment){"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[args[0]]
			if write == nil {
				return usagef("unknown shell %q (use bash, zsh or fish)", args[0])
			}
			write(a.stdout, env)
			return nil
		}
	},
}

// completionFlag is one flag as the completion scripts see it.
type completionFlag struct {
	long, short, usage string
	takesValue         bool
}

func completionFlags(c *command, env *environment) []completionFlag {
	var out []completionFlag
	commandFlags(c, env).VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		_, usage := pflag.UnquoteUsage(f)
		out = append(out, completionFlag{long: f.Name, short: f.Shorthand, usage: firstClause(usage),
			takesValue: f.Value.Type() != "bool"})
	})
	return out
}

// firstClause is a flag's usage up to its first ": ", ", ", "; " or
// " (": enough for a completion menu.
func firstClause(s string) string {
	for _, sep := range []string{": ", ", ", "; ", " ("} {
		if i := strings.Index(s, sep); i > 0 {
			s = s[:i]
		}
	}
	return strings.TrimSpace(s)
}

func bashCompletion(w io.Writer, env *environment) {
	var b strings.Builder
	b.WriteString("# bash completion for builder (builder completion bash)\n_builder() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} cmd= i\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tcase ${COMP_WORDS[i]} in\n\t\t--root) ((i++)) ;;\n\t\t-*) ;;\n\t\t*) cmd=${COMP_WORDS[i]}; break ;;\n\t\tesac\n\tdone\n")
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.Name
	}
	fmt.Fprintf(&b, "\tif [[ -z $cmd ]]; then\n\t\tCOMPREPLY=($(compgen -W '%s --root --help' -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(names, " "))
	b.WriteString("\tlocal flags=\n\tcase $cmd in\n")
	for _, c := range commands {
		var fl []string
		for _, f := range completionFlags(c, env) {
			fl = append(fl, "--"+f.long)
			if f.short != "" {
				fl = append(fl, "-"+f.short)
			}
		}
		fmt.Fprintf(&b, "\t%s) flags='%s' ;;\n", c.Name, strings.Join(fl, " "))
	}
	b.WriteString("\tesac\n")
	b.WriteString("\tif [[ $cur == -* ]]; then\n\t\tCOMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n\telse\n\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n\tfi\n}\n")
	b.WriteString("complete -o filenames -F _builder builder\n")
	io.WriteString(w, b.String())
}

func zshCompletion(w io.Writer, env *environment) {
	esc := strings.NewReplacer("'", "'\\''", "[", "\\[", "]", "\\]", ":", "\\:")
	var b strings.Builder
	b.WriteString("#compdef builder\n# zsh completion for builder (builder completion zsh)\n_builder() {\n")
	b.WriteString("\tlocal -a commands\n\tcommands=(\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t\t'%s:%s'\n", c.Name, esc.Replace(c.Short))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe 'command' commands\n\t\treturn\n\tfi\n")
	b.WriteString("\tlocal cmd=$words[2]\n\tshift words\n\t(( CURRENT-- ))\n\tcase $cmd in\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments", c.Name)
		for _, f := range completionFlags(c, env) {
			arg := ""
			if f.takesValue {
				arg = ":" + esc.Replace(f.long) + ":_files"
			}
			fmt.Fprintf(&b, " \\\n\t\t\t'--%s[%s]%s'", f.long, esc.Replace(f.usage), arg)
			if f.short != "" {
				fmt.Fprintf(&b, " \\\n\t\t\t'-%s[%s]%s'", f.short, esc.Replace(f.usage), arg)
			}
		}
		b.WriteString(" \\\n\t\t\t'*:file:_files' ;;\n")
	}
	b.WriteString("\tesac\n}\ncompdef _builder builder\n")
	io.WriteString(w, b.String())
}

func fishCompletion(w io.Writer, env *environment) {
	esc := strings.NewReplacer("'", "\\'")
	var b strings.Builder
	b.WriteString("# fish completion for builder (builder completion fish)\ncomplete -c builder -f\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c builder -n __fish_use_subcommand -a %s -d '%s'\n", c.Name, esc.Replace(c.Short))
	}
	for _, c := range commands {
		for _, f := range completionFlags(c, env) {
			line := fmt.Sprintf("complete -c builder -n '__fish_seen_subcommand_from %s' -l %s", c.Name, f.long)
			if f.short != "" {
				line += " -s " + f.short
			}
			if f.takesValue {
				line += " -r -F"
			}
			fmt.Fprintf(&b, "%s -d '%s'\n", line, esc.Replace(f.usage))
		}
	}
	io.WriteString(w, b.String())
}
