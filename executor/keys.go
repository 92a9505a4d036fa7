package executor

import (
	"fmt"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
)

// Every cache-key recipe is here, one function per kind of step, in the
// order of the key table in docs/ARCHITECTURE.md; change one and you
// change cache.KeyRecipe, the table, and testdata/keys.golden. Fields are
// named for what they hold, so BUILDER_DEBUG_KEYS=1 shows which one
// changed. Instructions are keyed field by field (instructionFields),
// never through a Go encoding of the parser's structs: renaming a struct
// field must not change every key, and a field added to an instruction
// must be given a name here (keys_test checks every instruction type).

// keyScratch is FROM scratch: nothing but the platform.
func keyScratch(platform v1.Platform) *cache.KeyBuilder {
	kb := cache.NewKeyBuilder()
	kb.AddString("from", "scratch")
	kb.AddString("platform", platform.String())
	return kb
}

// keyImage is FROM an image: its ID, the config digest, identifies it
// exactly (the config lists every layer's diff ID), as BuildKit keys it.
// Not the manifest digest: one image has several manifests (Docker or
// OCI media types, gzip or zstd layers), and a store that built and
// pushed an image holds another manifest than the one a fresh store
// pulls, so a cache shared between them would never hit.
func keyImage(id v1.Hash) *cache.KeyBuilder {
	kb := cache.NewKeyBuilder()
	kb.AddString("from", id.String())
	return kb
}

// runKey is what a RUN's result depends on.
type runKey struct {
	parent   cache.Key
	argv     []string // after SHELL
	env      []string // ENV, then every ARG in scope, then a default PATH
	user     string
	workdir  string
	network  string
	platform v1.Platform
	// history is the RUN's history text, which names every ARG in scope
	// even when unset or hidden by an ENV; a hit reuses the recorded
	// text, so it must be in the key.
	history string
	// heredocs are the RUN's inline files; a script run from a file
	// (a shebang) is not in argv.
	heredocs []parser.Heredoc
	// sandbox is Options.Sandbox as text, "" when it is the default
	// (and then not in the key, so that such keys stay as they were).
	sandbox string
}

func keyRun(r runKey) *cache.KeyBuilder {
	kb := cache.NewKeyBuilder()
	kb.AddString("parent", r.parent.String())
	kb.AddString("run.argv", jsonArray(r.argv))
	kb.AddString("run.env", jsonArray(r.env))
	kb.AddString("run.user", r.user)
	kb.AddString("run.workdir", r.workdir)
	kb.AddString("run.network", r.network)
	kb.AddString("run.platform", r.platform.String())
	kb.AddString("run.history", r.history)
	// Only a RUN with heredocs has these fields, and no such RUN had a
	// key before: the recipe version stays.
	for _, h := range r.heredocs {
		heredocFields(kb, "run.heredoc", h)
	}
	if r.sandbox != "" {
		kb.AddString("run.sandbox", r.sandbox)
	}
	return kb
}

// keyCopy starts a COPY or ADD key; the caller adds what the sources are
// with addCopyFromLayers or addCopySources.
func keyCopy(parent cache.Key, ins *parser.Copy, dest string) *cache.KeyBuilder {
	kb := cache.NewKeyBuilder()
	kb.AddString("parent", parent.String())
	copyFields(kb, ins)
	kb.AddString("copy.absolute-dest", dest)
	return kb
}

// addCopyFromLayers keys a COPY --from on the source's layers, whose diff
// IDs identify its content exactly.
func addCopyFromLayers(kb *cache.KeyBuilder, layers []cache.Layer) {
	for _, l := range layers {
		kb.AddString("copy.from-layer", l.DiffID.String())
	}
}

// addCopySources keys a COPY from the context on the selected files: the
// hash over each path, type, mode, owner, link target and content (see
// hashSources).
func addCopySources(kb *cache.KeyBuilder, sum string) {
	kb.AddString("copy.context-files", sum)
}

// keyPreviousCopy is not a result's key: it finds the last result of
// the same COPY from the same context, whose unchanged files a rebuild
// links instead of writing again.
func keyPreviousCopy(contextDir, stage string, ins *parser.Copy, dest string) *cache.KeyBuilder {
	kb := cache.NewKeyBuilder()
	kb.AddString("previous-copy.context", contextDir)
	kb.AddString("previous-copy.stage", stage)
	copyFields(kb, ins)
	kb.AddString("copy.absolute-dest", dest)
	return kb
}

// keyWorkdir is WORKDIR: the directory is created owned by USER.
func keyWorkdir(parent cache.Key, dir, user string) *cache.KeyBuilder {
	kb := cache.NewKeyBuilder()
	kb.AddString("parent", parent.String())
	kb.AddString("workdir.path", dir)
	kb.AddString("workdir.user", user)
	return kb
}

// keyMerge is a layer merged from several (--max-layers, --squash,
// flatten): the diff IDs of the layers it merges and of those below,
// whose content decides its whiteouts, identify it exactly.
func keyMerge(below, run []cache.Layer) *cache.KeyBuilder {
	kb := cache.NewKeyBuilder()
	for _, l := range below {
		kb.AddString("merge.below", l.DiffID.String())
	}
	for _, l := range run {
		kb.AddString("merge.layer", l.DiffID.String())
	}
	return kb
}

// keyMeta is a step that changes only the config: the previous step's
// key and the instruction.
func keyMeta(prev cache.Key, ins parser.Instruction) (*cache.KeyBuilder, error) {
	kb := cache.NewKeyBuilder()
	kb.AddString("previous", prev.String())
	if err := instructionFields(kb, ins); err != nil {
		return nil, err
	}
	return kb, nil
}

// addEpoch keys a step on SOURCE_DATE_EPOCH when it is set: it clamps
// file times in layers and sets history times, so it changes what a step
// produces. Left out when unset, so ordinary keys do not depend on it.
func addEpoch(kb *cache.KeyBuilder, epoch *time.Time) {
	if epoch != nil {
		kb.AddString("source-date-epoch", strconv.FormatInt(epoch.Unix(), 10))
	}
}

// addCompression keys a merged layer on its compression: unlike a step's
// layer, which its snapshot holds (cache/held.go), a merged layer is
// stored as a blob (squash.go), and a hit must not hand a gzip blob to a
// build that asked for zstd.
func addCompression(kb *cache.KeyBuilder, c cache.Compression) {
	format := c.Format
	if format == "" {
		format = "gzip"
	}
	kb.AddString("layer.compression", fmt.Sprintf("%s/%d", format, c.Level))
}

// copyFields names every field of a COPY or ADD instruction.
func copyFields(kb *cache.KeyBuilder, c *parser.Copy) {
	name := "COPY"
	if c.Add {
		name = "ADD"
	}
	kb.AddString("instruction", name)
	kb.AddString("copy.sources", jsonArray(c.Sources))
	for _, h := range c.Inline {
		heredocFields(kb, "copy.inline", h)
	}
	kb.AddString("copy.dest", c.Dest)
	switch {
	case c.From == nil:
		kb.AddString("copy.from", "")
	case c.From.Stage >= 0:
		kb.AddString("copy.from", "stage "+strconv.Itoa(c.From.Stage))
	case c.From.Dir != "":
		// its files are keyed by content; the path is the machine's
		kb.AddString("copy.from", "context")
	default:
		kb.AddString("copy.from", "image "+c.From.Image)
	}
	kb.AddString("copy.chown", c.Chown)
	kb.AddString("copy.chmod", c.Chmod)
	kb.AddString("copy.link", strconv.FormatBool(c.Link))
	kb.AddString("copy.exclude", jsonArray(c.Exclude))
	kb.AddString("copy.parents", strconv.FormatBool(c.Parents))
	kb.AddString("copy.checksum", c.Checksum)
	unpack := ""
	if c.Unpack != nil {
		unpack = strconv.FormatBool(*c.Unpack)
	}
	kb.AddString("copy.unpack", unpack)
	kb.AddString("copy.keep-git-dir", strconv.FormatBool(c.KeepGitDir))
}

func heredocFields(kb *cache.KeyBuilder, prefix string, h parser.Heredoc) {
	kb.AddString(prefix+".name", h.Name)
	kb.AddString(prefix+".data", h.Data)
	kb.AddString(prefix+".chomp", strconv.FormatBool(h.Chomp))
	kb.AddString(prefix+".expand", strconv.FormatBool(h.Expand))
}

// instructionFields names every field of a metadata instruction (and of
// COPY). An instruction without a recipe is an error, never a silent
// key: keys_test parses one of each.
func instructionFields(kb *cache.KeyBuilder, ins parser.Instruction) error {
	switch ins := ins.(type) {
	case *parser.Copy:
		copyFields(kb, ins)
	case *parser.Env:
		kb.AddString("instruction", "ENV")
		kvFields(kb, "env", ins.Pairs)
	case *parser.Label:
		kb.AddString("instruction", "LABEL")
		kvFields(kb, "label", ins.Pairs)
	case *parser.Arg:
		kb.AddString("instruction", "ARG")
		for _, a := range ins.Args {
			kb.AddString("arg.name", a.Key)
			kb.AddString("arg.default", optional(a.Value))
		}
	case *parser.Workdir:
		kb.AddString("instruction", "WORKDIR")
		kb.AddString("workdir.path", ins.Path)
	case *parser.User:
		kb.AddString("instruction", "USER")
		kb.AddString("user", ins.User)
	case *parser.Cmd:
		kb.AddString("instruction", "CMD")
		kb.AddString("cmd.args", jsonArray(ins.Args))
		kb.AddString("cmd.shell", strconv.FormatBool(ins.Shell))
	case *parser.Entrypoint:
		kb.AddString("instruction", "ENTRYPOINT")
		kb.AddString("entrypoint.args", jsonArray(ins.Args))
		kb.AddString("entrypoint.shell", strconv.FormatBool(ins.Shell))
	case *parser.Expose:
		kb.AddString("instruction", "EXPOSE")
		kb.AddString("expose.ports", jsonArray(ins.Ports))
	case *parser.Volume:
		kb.AddString("instruction", "VOLUME")
		kb.AddString("volume.paths", jsonArray(ins.Paths))
	case *parser.StopSignal:
		kb.AddString("instruction", "STOPSIGNAL")
		kb.AddString("stopsignal", ins.Signal)
	case *parser.Healthcheck:
		kb.AddString("instruction", "HEALTHCHECK")
		kb.AddString("healthcheck.test", jsonArray(ins.Test))
		kb.AddString("healthcheck.interval", ins.Interval.String())
		kb.AddString("healthcheck.timeout", ins.Timeout.String())
		kb.AddString("healthcheck.start-period", ins.StartPeriod.String())
		kb.AddString("healthcheck.start-interval", ins.StartInterval.String())
		kb.AddString("healthcheck.retries", strconv.Itoa(ins.Retries))
	case *parser.Shell:
		kb.AddString("instruction", "SHELL")
		kb.AddString("shell", jsonArray(ins.Shell))
	case *parser.Onbuild:
		kb.AddString("instruction", "ONBUILD")
		kb.AddString("onbuild", ins.Expression)
	case *parser.Maintainer:
		kb.AddString("instruction", "MAINTAINER")
		kb.AddString("maintainer", ins.Name)
	default:
		return fmt.Errorf("internal: no cache-key recipe for %T", ins)
	}
	return nil
}

func kvFields(kb *cache.KeyBuilder, prefix string, pairs []parser.KV) {
	for _, p := range pairs {
		kb.AddString(prefix+".key", p.Key)
		kb.AddString(prefix+".value", p.Value)
	}
}

func optional(s *string) string {
	if s == nil {
		return "(unset)"
	}
	return "=" + *s
}
