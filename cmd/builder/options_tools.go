package main

// The flags that scripts and tools written for docker build, buildx and
// docker's image commands pass, read as options.go reads the others.

import (
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/registry"
)

// toolFlags are the build flags that scripts and tools written for
// docker build and buildx pass.
type toolFlags struct {
	metadataFile      string
	rm, forceRm, load bool
	addHosts, ulimits []string
	shmSize           string
	buildContexts     []string
}

func registerToolFlags(fs *pflag.FlagSet, f *toolFlags) {
	fs.StringVar(&f.metadataFile, "metadata-file", "", "write the image's digests and names to `FILE` as JSON, as buildx does")
	fs.BoolVar(&f.rm, "rm", true, "accepted for docker's scripts: there are no intermediate containers to remove")
	fs.BoolVar(&f.forceRm, "force-rm", false, "accepted for docker's scripts: there are no intermediate containers to remove")
	fs.BoolVar(&f.load, "load", false, "accepted for buildx's scripts: the image is always in the local store")
	fs.StringArrayVar(&f.addHosts, "add-host", nil, "add `HOST:IP` to the /etc/hosts of RUN steps (repeatable)")
	fs.StringVar(&f.shmSize, "shm-size", "", "the size of /dev/shm in RUN steps, `SIZE` such as 64m or 1g (default 64m)")
	fs.StringArrayVar(&f.ulimits, "ulimit", nil, "a resource limit of RUN steps, `NAME=SOFT[:HARD]`, e.g. nofile=1024:2048 (repeatable)")
	fs.StringArrayVar(&f.buildContexts, "build-context", nil, "another context, `NAME=DIR|docker-image://REF`: FROM NAME and COPY --from=NAME read it instead of a stage or an image of that name (repeatable)")
}

// namedContexts reads --build-context.
func (f *toolFlags) namedContexts() (map[string]parser.NamedContext, error) {
	if len(f.buildContexts) == 0 {
		return nil, nil
	}
	m := map[string]parser.NamedContext{}
	for _, bc := range f.buildContexts {
		name, v, ok := strings.Cut(bc, "=")
		if !ok || name == "" || v == "" {
			return nil, usagef("invalid --build-context %q: want NAME=DIR or NAME=docker-image://REF", bc)
		}
		name = strings.ToLower(name)
		switch ref, isImage := strings.CutPrefix(v, "docker-image://"); {
		case isImage:
			if _, err := registry.ParseReference(ref, nil); err != nil {
				return nil, usagef("invalid --build-context %q: %v", bc, err)
			}
			m[name] = parser.NamedContext{Image: ref}
		case strings.Contains(v, "://") || isURLContext(v):
			return nil, usagef("--build-context %q is not supported: give a directory or docker-image://REF", bc)
		default:
			dir, err := filepath.Abs(v)
			if err != nil {
				return nil, err
			}
			m[name] = parser.NamedContext{Dir: dir}
		}
	}
	return m, nil
}

// sandbox reads --add-host, --shm-size and --ulimit.
func (f *toolFlags) sandbox() (executor.Sandbox, error) {
	var s executor.Sandbox
	for _, h := range f.addHosts {
		// HOST:IP, or HOST=IP as newer docker takes it (IPv6 has colons)
		i := strings.IndexAny(h, ":=")
		name, ip := h[:max(i, 0)], h[i+1:]
		if i <= 0 || net.ParseIP(ip) == nil {
			return s, usagef("invalid --add-host %q: want HOST:IP, e.g. db:10.0.0.5", h)
		}
		s.ExtraHosts = append(s.ExtraHosts, [2]string{name, ip})
	}
	if f.shmSize != "" {
		n, err := parseSize(f.shmSize)
		if err != nil || n <= 0 {
			return s, usagef("invalid --shm-size %q: want a size such as 64m or 1g", f.shmSize)
		}
		s.ShmSize = n
	}
	for _, u := range f.ulimits {
		l, err := parseUlimit(u)
		if err != nil {
			return s, err
		}
		s.Ulimits = append(s.Ulimits, l)
	}
	return s, nil
}

// parseUlimit reads docker's NAME=SOFT[:HARD]; -1 is unlimited.
func parseUlimit(u string) (executor.Rlimit, error) {
	name, val, _ := strings.Cut(u, "=")
	res, ok := executor.UlimitResource(name)
	if !ok {
		return executor.Rlimit{}, usagef("invalid --ulimit %q: unknown limit %q (e.g. nofile, nproc, core, stack, memlock)", u, name)
	}
	soft, hard, hasHard := strings.Cut(val, ":")
	if !hasHard {
		hard = soft
	}
	num := func(s string) (uint64, bool) {
		if s == "-1" || s == "unlimited" {
			return math.MaxUint64, true
		}
		n, err := strconv.ParseUint(s, 10, 64)
		return n, err == nil
	}
	l := executor.Rlimit{Resource: res}
	var okS, okH bool
	l.Soft, okS = num(soft)
	l.Hard, okH = num(hard)
	if !okS || !okH || l.Soft > l.Hard {
		return l, usagef("invalid --ulimit %q: want NAME=SOFT[:HARD] with SOFT at most HARD", u)
	}
	return l, nil
}

// --- the flags scripts pass to docker's image commands ---

type inspectFlags struct{ format string }

func registerInspectFlags(fs *pflag.FlagSet) *inspectFlags {
	f := &inspectFlags{}
	fs.StringVarP(&f.format, "format", "f", "", "print each image through the Go `TEMPLATE`, as docker does ({{.Id}}, {{json .Config}}, {{index .RepoTags 0}})")
	return f
}

type imagesFlags struct {
	quiet, noTrunc, all, tree bool
	format                    string
	filters                   []string
}

func registerImagesFlags(fs *pflag.FlagSet) *imagesFlags {
	f := &imagesFlags{}
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print only image IDs")
	fs.StringVar(&f.format, "format", "", "print each image through the Go `TEMPLATE` ({{.Repository}}, {{.Tag}}, {{.ID}}, {{.CreatedSince}}, {{.CreatedAt}}, {{.Size}}, {{.Digest}}); 'table TEMPLATE' adds a header, 'json' one JSON object a line")
	fs.BoolVar(&f.noTrunc, "no-trunc", false, "print whole image IDs")
	fs.StringArrayVarP(&f.filters, "filter", "f", nil, "only images matching `FILTER`: reference=PATTERN (as the REPOSITORY[:TAG] argument)")
	fs.BoolVarP(&f.all, "all", "a", false, "accepted for docker's scripts: the store keeps no intermediate images to show")
	fs.BoolVar(&f.tree, "tree", false, "draw the images as a tree of the layers they share, with the size each layer adds")
	return f
}

// imagesOptions are an images command line, checked.
type imagesOptions struct {
	quiet, noTrunc, tree bool
	format               string
	patterns             []string // REPOSITORY[:TAG] patterns; an image must match one
}

func (f *imagesFlags) options(args []string) (imagesOptions, error) {
	o := imagesOptions{quiet: f.quiet, noTrunc: f.noTrunc, format: f.format, tree: f.tree}
	if f.tree && (f.quiet || f.format != "") {
		return o, usagef("--tree draws a tree: it takes no -q or --format")
	}
	if len(args) > 1 {
		return o, usagef("unexpected argument %q: images takes at most one REPOSITORY[:TAG]", args[1])
	}
	o.patterns = append(o.patterns, args...)
	for _, filter := range f.filters {
		k, v, _ := strings.Cut(filter, "=")
		if k != "reference" || v == "" {
			return o, usagef("invalid --filter %q: only reference=PATTERN is supported", filter)
		}
		o.patterns = append(o.patterns, v)
	}
	return o, nil
}

type rmiFlags struct{ force bool }

func registerRmiFlags(fs *pflag.FlagSet) *rmiFlags {
	f := &rmiFlags{}
	fs.BoolVarP(&f.force, "force", "f", false, "accepted for docker's scripts: there are no containers to stop a removal")
	return f
}

// isURLContext reports the contexts docker fetches: git repositories and
// URLs.
func isURLContext(arg string) bool {
	for _, p := range []string{"http://", "https://", "git://", "git@", "github.com/", "ssh://"} {
		if strings.HasPrefix(arg, p) {
			return true
		}
	}
	return false
}
