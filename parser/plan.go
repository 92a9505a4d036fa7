package parser

import (
	"fmt"
	"time"
)

// Pos is a place in a Dockerfile. Line and EndLine are 1-based; EndLine is
// the last line of an instruction continued over several lines.
type Pos struct {
	File    string // as it appears in messages, e.g. "Dockerfile"
	Line    int
	EndLine int
}

// String formats the position as errors show it: "Dockerfile:7".
func (p Pos) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is a problem in the Dockerfile at a known place. Its message reads
// like a compiler's: "Dockerfile:7: unknown instruction: COPPY".
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Options control how a Dockerfile is read.
type Options struct {
	// Filename is the name used in positions; default "Dockerfile".
	Filename string
	// BuildArgs are the --build-arg values. Parse resolves them once, into
	// FROM lines, [ArgDef.Resolved], [Plan.ProxyEnv] and [Plan.UnusedArgs];
	// the executor reads those and never the build args themselves.
	BuildArgs map[string]string
	// Target names the stage to build; empty means the last one.
	Target string
	// BuildPlatform, the machine that builds, and TargetPlatform, the one
	// built for ("linux/amd64"; default linux/<GOARCH> and BuildPlatform),
	// give the predefined args BUILDPLATFORM, BUILDARCH, …, TARGETPLATFORM,
	// TARGETARCH, … to FROM lines, and to the ARGs of a stage that
	// declare them.
	BuildPlatform  string
	TargetPlatform string
	// NamedContexts are the --build-context values by name (lower case).
	// A FROM or COPY --from that names one reads it, even where a stage
	// has that name, as with BuildKit.
	NamedContexts map[string]NamedContext
}

// NamedContext is one --build-context: an image reference, or a local
// directory (which COPY --from reads, and FROM cannot).
type NamedContext struct {
	Image string
	Dir   string
}

// Plan is a parsed, checked Dockerfile: every stage with its base and
// steps, the stage dependency edges, and the stage to build.
type Plan struct {
	File     string   // Options.Filename
	Escape   rune     // the escape token ('\\' or '`')
	Syntax   string   // the "# syntax=" directive, if any; informative only
	Args     []ArgDef // global ARGs, declared before the first FROM; defaults expanded with the ARGs before them
	Stages   []*Stage // in file order; Stage.Index is the position here
	Target   int      // index of the stage to build
	Warnings []string // non-fatal findings, e.g. deprecated forms, each with its position
	// ProxyEnv holds the proxy build args (HTTP_PROXY, no_proxy, …) as
	// "KEY=VALUE", sorted by key: RUN steps see them without an ARG, as in
	// docker, and cache keys leave them out.
	ProxyEnv []string
	// UnusedArgs are the build args no ARG of the file declares (proxy args
	// and SOURCE_DATE_EPOCH aside), sorted; docker warns about them.
	UnusedArgs []string

	scope argScope // what ARGs resolve against; see args.go
}

// Needed returns the indices of the stages the target depends on,
// transitively, including the target, in an order where every stage comes
// after the stages it depends on.
func (p *Plan) Needed() []int { return p.needed(p.Target) }

// BaseKind says what a stage starts from.
type BaseKind int

const (
	BaseImage   BaseKind = iota // an image reference, local or in a registry
	BaseStage                   // an earlier stage of this Dockerfile
	BaseScratch                 // the empty filesystem
)

// Base is what a stage starts from, resolved at parse time.
type Base struct {
	Kind  BaseKind
	Image string // BaseImage: the reference as written, after ARG expansion ("alpine", "127.0.0.1:5000/x:1")
	Stage int    // BaseStage: index of the stage
}

// Stage is one FROM and the steps after it.
type Stage struct {
	Index    int
	Name     string // lower-cased "AS name", or ""
	Pos      Pos    // of the FROM line
	Base     Base
	Platform string // FROM --platform, after expansion; "" when not given
	Steps    []Step
	// Deps are the stages this one needs: its base stage and every
	// COPY --from=<stage> and RUN --mount from=<stage>. Sorted, unique.
	Deps []int
}

// Step is one instruction of a stage. Its typed form comes from Expand,
// because variables can only be replaced once the environment of the
// stage (which includes the base image's ENV) is known.
type Step struct {
	Pos  Pos
	Name string // upper-case instruction name: "RUN", "COPY", …
	Text string // the instruction as written, continuation lines joined; for messages and history

	expand func(env []string) (Instruction, error)
}

// Expand returns the step's instruction with variables replaced using env
// (a list of "KEY=VALUE"; the last value of a key wins), following the
// rules of `docker build` for which instructions and which words expand.
// An expansion error is an *Error at the step's position.
func (s Step) Expand(env []string) (Instruction, error) {
	if s.expand == nil {
		return nil, &Error{Pos: s.Pos, Msg: "internal: step has no instruction"}
	}
	return s.expand(env)
}

// Instruction is the typed form of a step after expansion. It is one of
// *Run, *Copy, *Env, *Arg, *Label, *Workdir, *User, *Cmd, *Entrypoint,
// *Expose, *Volume, *StopSignal, *Healthcheck, *Shell, *Onbuild, *Maintainer.
type Instruction interface{ instruction() }

// KV is a key and its value (ENV, LABEL).
type KV struct{ Key, Value string }

// ArgDef is one name of an ARG instruction.
type ArgDef struct {
	Key string
	// Value is the default if given, as the history shows it: expanded,
	// or as written when a build arg replaces it.
	Value *string
	// Resolved is what the name holds from this ARG on, resolved by the
	// parser: the build arg, else the default, else the global ARG or
	// predefined platform arg of that name; nil when it is unset. For a
	// global ARG, it is what FROM lines see.
	Resolved *string
}

// Heredoc is an inline file given with <<EOF.
type Heredoc struct {
	Name   string // the delimiter word, or the destination file name for COPY
	Data   string // the content; for COPY, variables expanded when Expand is set
	Chomp  bool   // <<- : leading tabs are already removed from Data
	Expand bool   // delimiter was unquoted: variables in Data are expanded (by BuildKit's rules for COPY, by the shell for RUN)
}

// RunMount is one RUN --mount option, parsed but interpreted by the executor.
type RunMount struct {
	Type     string // bind, cache, tmpfs, secret, ssh
	Target   string
	Source   string
	From     string // as written: a stage name or index, or an image
	Stage    int    // the stage From names, or -1 (no From, or an image)
	ReadOnly bool
	ID       string
	Sharing  string
	UID, GID *int
	Mode     *uint32
	Required bool
	Env      *string // secret: the variable to set; "" names the id's default
	Size     int64   // tmpfs: the size limit in bytes; 0 is the kernel's default
}

// Run is RUN. With Shell set, Args holds one command line for the shell;
// otherwise Args is the exec form.
type Run struct {
	Args     []string
	Shell    bool
	Heredocs []Heredoc
	// HeredocOnly is set when the command is nothing but one heredoc
	// ("RUN <<EOF"): its content is the script, as BuildKit runs it.
	HeredocOnly bool
	Network     string // "", "default", "none", "host"
	Security    string // "", "sandbox", "insecure"
	Mounts      []RunMount
	Devices     []string // RUN --device names (Dockerfile 1.14 labs)
}

// CopyFrom is the source of a COPY --from: a stage index, an image, or
// a directory named by --build-context.
type CopyFrom struct {
	Stage int    // -1 when not a stage
	Image string // set when --from names an image
	Dir   string `json:",omitempty"` // set when --from names a directory context
}

// Copy is COPY, or ADD when Add is set.
type Copy struct {
	Add        bool
	Sources    []string  // as written after expansion; may hold wildcards; URLs for ADD
	Inline     []Heredoc // COPY <<EOF dest
	Dest       string
	From       *CopyFrom // nil: the build context
	Chown      string
	Chmod      string
	Link       bool
	Exclude    []string
	Parents    bool
	Checksum   string // ADD --checksum
	Unpack     *bool  // ADD --unpack
	KeepGitDir bool
}

type Env struct{ Pairs []KV }
type Arg struct{ Args []ArgDef }
type Label struct{ Pairs []KV }
type Workdir struct{ Path string }
type User struct{ User string }

// Cmd is CMD; Shell is set for the shell form (the executor prepends SHELL).
type Cmd struct {
	Args  []string
	Shell bool
}

// Entrypoint is ENTRYPOINT; Shell is set for the shell form.
type Entrypoint struct {
	Args  []string
	Shell bool
}

type Expose struct{ Ports []string }
type Volume struct{ Paths []string }
type StopSignal struct{ Signal string }

// Healthcheck is HEALTHCHECK; Test is ["NONE"] for HEALTHCHECK NONE, and
// otherwise starts with "CMD" or "CMD-SHELL" as in the image config.
type Healthcheck struct {
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

type Shell struct{ Shell []string }

// Onbuild is ONBUILD; Expression is the trigger as written ("RUN make").
type Onbuild struct{ Expression string }

type Maintainer struct{ Name string }

func (*Run) instruction()         {}
func (*Copy) instruction()        {}
func (*Env) instruction()         {}
func (*Arg) instruction()         {}
func (*Label) instruction()       {}
func (*Workdir) instruction()     {}
func (*User) instruction()        {}
func (*Cmd) instruction()         {}
func (*Entrypoint) instruction()  {}
func (*Expose) instruction()      {}
func (*Volume) instruction()      {}
func (*StopSignal) instruction()  {}
func (*Healthcheck) instruction() {}
func (*Shell) instruction()       {}
func (*Onbuild) instruction()     {}
func (*Maintainer) instruction()  {}
