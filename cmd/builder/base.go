package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// Exit codes. They are part of the interface: scripts test for them.
const (
	exitOK      = 0
	exitFailure = 1 // the build or operation failed
	exitUsage   = 2 // the command line was wrong
)

// A command is one subcommand. Each invocation gets a fresh FlagSet, so
// flag values never leak between runs (the script tests run many in one
// process only through re-execution, but the unit tests do not).
type command struct {
	Name    string
	Args    string // after the name in the usage line: "[flags] CONTEXT"
	Short   string // one line for `builder --help`
	Long    string // the paragraph of `builder NAME --help`
	Example string

	// Setup registers the command's flags on fs (through options.go) and
	// returns the function that runs the command once fs is parsed.
	Setup func(fs *pflag.FlagSet, env *environment) runFunc
}

type runFunc func(ctx context.Context, a *app, args []string) error

func (c *command) usageLine() string {
	return strings.TrimSpace("Usage: builder " + c.Name + " " + c.Args)
}

// commands is the command table, in the order `builder --help` lists it.
var commands []*command

func init() {
	commands = []*command{
		cmdBuild, cmdImages, cmdInspect, cmdHistory, cmdDiff, cmdTag, cmdRmi,
		cmdSave, cmdLoad, cmdPull, cmdPush, cmdFlatten, cmdLogin, cmdLogout, cmdPrune, cmdDu, cmdCheck, cmdVersion, cmdCompletion,
	}
}

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// usageError is a command line that cannot be run. run prints it under
// the command's usage line and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp asks run to print the command's help and succeed.
var errHelp = errors.New("help requested")

// errReported is a failure whose errors the command has printed already,
// for commands that go on after one argument fails (rmi, inspect).
var errReported = errors.New("failed")

const rootUsage = "Usage: builder [--root DIR] COMMAND [ARGS]"

// run is the whole program short of process setup: it parses args, runs
// one command and returns the exit code.
func run(ctx context.Context, a *app, args []string) int {
	global := pflag.NewFlagSet("builder", pflag.ContinueOnError)
	global.SetInterspersed(false) // flags after the command name belong to it
	silence(global)
	help := global.BoolP("help", "h", false, "show this help")
	registerGlobalFlags(global, a.env)
	if err := global.Parse(args); err != nil {
		return a.usage(rootUsage, err)
	}
	rest := global.Args()
	if *help || (len(rest) > 0 && rest[0] == "help") {
		if len(rest) > 1 && lookupCommand(rest[1]) != nil {
			printCommandHelp(a.stdout, lookupCommand(rest[1]), commandFlags(lookupCommand(rest[1]), a.env))
			return exitOK
		}
		printRootHelp(a.stdout, global)
		return exitOK
	}
	if len(rest) == 0 {
		printRootHelp(a.stderr, global)
		return exitUsage
	}
	cmd := lookupCommand(rest[0])
	if cmd == nil {
		return a.usage(rootUsage, usagef("unknown command %q (see 'builder --help')", rest[0]))
	}
	fs := pflag.NewFlagSet(cmd.Name, pflag.ContinueOnError)
	silence(fs)
	cmdHelp := fs.BoolP("help", "h", false, "show this help")
	runCmd := cmd.Setup(fs, a.env)
	registerGlobalFlags(fs, a.env)
	if err := fs.Parse(rest[1:]); err != nil {
		return a.usage(cmd.usageLine(), err)
	}
	if *cmdHelp {
		printCommandHelp(a.stdout, cmd, fs)
		return exitOK
	}
	err := runCmd(ctx, a, fs.Args())
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		printCommandHelp(a.stdout, cmd, fs)
		return exitOK
	case errors.Is(err, errReported):
		return exitFailure
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return a.usage(cmd.usageLine(), err)
	}
	printError(a.stderr, err)
	for _, h := range storeHints(a.env, err) {
		fmt.Fprintln(a.stderr, "builder: hint: "+h)
	}
	return exitFailure
}

// usage reports a command line that cannot be run.
func (a *app) usage(line string, err error) int {
	fmt.Fprintln(a.stderr, line)
	fmt.Fprintf(a.stderr, "builder: %v\n", err)
	return exitUsage
}

// silence stops pflag from printing on its own: run decides what goes out.
func silence(fs *pflag.FlagSet) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
}

// commandFlags returns a command's flags, for its help text.
func commandFlags(c *command, env *environment) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	silence(fs)
	fs.BoolP("help", "h", false, "show this help")
	c.Setup(fs, env)
	registerGlobalFlags(fs, env)
	return fs
}

func printRootHelp(w io.Writer, global *pflag.FlagSet) {
	var b strings.Builder
	b.WriteString("builder builds OCI images from Dockerfiles, without a daemon.\n\n")
	b.WriteString(rootUsage + "\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.Name, c.Short)
	}
	b.WriteString("\nGlobal flags:\n")
	b.WriteString(global.FlagUsages())
	b.WriteString("\nRun 'builder COMMAND --help' for more about a command.\n\n")
	b.WriteString("Example:\n  builder build -t app:latest .\n  builder images\n")
	io.WriteString(w, b.String())
}

func printCommandHelp(w io.Writer, c *command, fs *pflag.FlagSet) {
	var b strings.Builder
	b.WriteString(c.usageLine() + "\n\n")
	b.WriteString(strings.TrimSpace(c.Long) + "\n")
	if usages := fs.FlagUsages(); usages != "" {
		b.WriteString("\nFlags:\n" + usages)
	}
	b.WriteString("\nExample:\n")
	for _, line := range strings.Split(strings.TrimSpace(c.Example), "\n") {
		b.WriteString("  " + strings.TrimSpace(line) + "\n")
	}
	io.WriteString(w, b.String())
}

// exactArgs checks a command's positional argument count.
func exactArgs(args []string, n int, what string) error {
	switch {
	case len(args) < n:
		return usagef("missing %s", what)
	case len(args) > n:
		return usagef("unexpected argument %q", args[n])
	}
	return nil
}
