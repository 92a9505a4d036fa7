package main

import (
	"fmt"
	"strings"
)

// commandMarkdown is a command's page for docs/cli/: its help text, the
// same that --help prints, under a title. TestCLIDocs keeps the pages in
// step with the help (go test -update rewrites them).
func commandMarkdown(c *command, env *environment) string {
	var help strings.Builder
	printCommandHelp(&help, c, commandFlags(c, env))
	return fmt.Sprintf("# builder %s\n\n%s.\n\n```\n%s```\n", c.Name, c.Short, help.String())
}

// cliIndex is docs/cli/README.md: every command, linked.
func cliIndex() string {
	var b strings.Builder
	b.WriteString("# builder commands\n\nOne page per command, made from its --help (`go test ./cmd/builder -run TestCLIDocs -update`).\n\n")
	b.WriteString("| command | what it does |\n| --- | --- |\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "| [`%s`](%s.md) | %s |\n", c.Name, c.Name, c.Short)
	}
	return b.String()
}
