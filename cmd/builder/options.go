package main

// This file and options_tools.go are the only ones that read flags and
// environment variables; they turn them into the options of the library
// packages. The commands see typed option structs and never a FlagSet
// value or os.Getenv.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/registry"
)

// environment is what the process started with: the global flags and the
// environment variables builder reads (BUILDER_ROOT, XDG_DATA_HOME, HOME,
// SOURCE_DATE_EPOCH, CI, BUILDER_DEBUG_KEYS, BUILDER_CACHE_VERIFY, and those --build-arg K
// names). Tests build one by hand.
type environment struct {
	root      string // --root
	lookupEnv func(string) (string, bool)
	euid      int
	stderrTTY bool
	size      func() (cols, rows int) // of the terminal on stderr
}

func newEnvironment() *environment {
	fd := int(os.Stderr.Fd())
	return &environment{
		lookupEnv: os.LookupEnv,
		euid:      os.Geteuid(),
		stderrTTY: term.IsTerminal(fd),
		size: func() (int, int) {
			w, h, err := term.GetSize(fd)
			if err != nil || w <= 0 || h <= 0 {
				return 80, 24
			}
			return w, h
		},
	}
}

func (env *environment) getenv(k string) string {
	v, _ := env.lookupEnv(k)
	return v
}

// inCI reports CI set, as CI services set it (CI=false and CI=0 do not
// count): progress is plain there, even with --progress=tty.
func (env *environment) inCI() bool {
	switch env.getenv("CI") {
	case "", "false", "0":
		return false
	}
	return true
}

// plainTerminal reports what makes --progress=auto plain even on a
// terminal: TERM=dumb, or NO_COLOR set (no-color.org).
func (env *environment) plainTerminal() bool {
	return env.getenv("TERM") == "dumb" || env.getenv("NO_COLOR") != ""
}

// rootValue is --root as a pflag.Value. Unlike StringVar, defining it does
// not reset the variable, so the global flag set and the command's flag
// set can both accept --root.
type rootValue struct{ p *string }

func (v rootValue) String() string     { return *v.p }
func (v rootValue) Set(s string) error { *v.p = s; return nil }
func (v rootValue) Type() string       { return "string" }

func registerGlobalFlags(fs *pflag.FlagSet, env *environment) {
	fs.Var(rootValue{&env.root}, "root", "the store `DIR` (default $BUILDER_ROOT, else /var/lib/builder as root, else $XDG_DATA_HOME/builder)")
}

// storeRoot is the store directory: --root, else BUILDER_ROOT, else
// /var/lib/builder for root and $XDG_DATA_HOME/builder (default
// ~/.local/share/builder) for anyone else.
func (env *environment) storeRoot() (string, error) {
	if env.root != "" {
		return filepath.Abs(env.root)
	}
	if r := env.getenv("BUILDER_ROOT"); r != "" {
		return filepath.Abs(r)
	}
	if env.euid == 0 {
		return "/var/lib/builder", nil
	}
	if x := env.getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "builder"), nil
	}
	home := env.getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("cannot choose a store directory: HOME is not set (use --root or BUILDER_ROOT)")
	}
	return filepath.Join(home, ".local", "share", "builder"), nil
}

// --- check ---

type checkFlags struct{ repair bool }

func registerCheckFlags(fs *pflag.FlagSet) *checkFlags {
	f := &checkFlags{}
	fs.BoolVar(&f.repair, "repair", false, "remove what is broken")
	return f
}

// --- build ---

type buildFlags struct {
	tags, buildArgs, labels, noCacheFilter []string
	file, target, platform, iidfile        string
	progress, compression, network, format string
	allow, outputs, insecure               []string
	cacheTo, cacheFrom                     []string
	secrets, ssh                           []string
	noCache, pull, quiet, push             bool
	squash, squashAll                      bool
	jobs, maxLayers                        int
	tool                                   toolFlags
}

func registerBuildFlags(fs *pflag.FlagSet) *buildFlags {
	f := &buildFlags{}
	fs.StringArrayVarP(&f.tags, "tag", "t", nil, "name the image `NAME[:TAG]` (repeatable)")
	fs.StringVarP(&f.file, "file", "f", "", "the Dockerfile `FILE` (default CONTEXT/Dockerfile; - reads stdin)")
	fs.StringArrayVar(&f.buildArgs, "build-arg", nil, "set a build arg `K=V`, or K to take it from the environment (repeatable)")
	fs.StringVar(&f.target, "target", "", "the `STAGE` to build (default the last one)")
	fs.StringArrayVar(&f.labels, "label", nil, "add a label `K=V` to the image (repeatable)")
	fs.StringVar(&f.platform, "platform", "", "the target `PLATFORM`, e.g. linux/arm64 (default the host's)")
	fs.BoolVar(&f.noCache, "no-cache", false, "run every step, ignoring the build cache")
	fs.StringArrayVar(&f.noCacheFilter, "no-cache-filter", nil, "run every step of `STAGE`, ignoring the cache (repeatable)")
	fs.BoolVar(&f.pull, "pull", false, "always check the registry for newer base images")
	fs.StringVar(&f.iidfile, "iidfile", "", "write the image ID to `FILE`")
	fs.StringArrayVarP(&f.outputs, "output", "o", nil, "also export the image as `SPEC`: type=oci|docker,dest=FILE (- for stdout), type=oci-layout,dest=DIR, type=registry,name=REF, or its final files: type=local,dest=DIR (or just DIR), type=tar,dest=FILE (repeatable)")
	fs.BoolVar(&f.push, "push", false, "push the image to every -t name once it is built")
	fs.StringArrayVar(&f.cacheTo, "cache-to", nil, "export the build cache to `SPEC`: type=registry,ref=REF or type=local,dest=DIR, with mode=min (the image's steps, default) or mode=max (every stage's)")
	fs.StringArrayVar(&f.cacheFrom, "cache-from", nil, "use the build cache at `SPEC`: type=registry,ref=REF (or just REF) or type=local,src=DIR (repeatable)")
	registerInsecureFlag(fs, &f.insecure)
	fs.BoolVar(&f.squash, "squash", false, "make the build's layers one layer, keeping the base's (the history keeps every step)")
	fs.BoolVar(&f.squashAll, "squash-all", false, "make the whole image one layer (the history keeps every step)")
	registerMaxLayersFlag(fs, &f.maxLayers, executor.DefaultMaxLayers)
	fs.StringVar(&f.progress, "progress", "auto", "progress output `MODE`: auto (a live display on a terminal, else plain), plain, tty, rawjson (one JSON event a line) or quiet")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but the image ID")
	fs.StringVar(&f.compression, "compression", "gzip", "layer compression `FORMAT`: gzip, zstd (implies --format oci) or none")
	fs.StringVar(&f.format, "format", "", "the image's media types, `FORMAT`: docker (default, as docker build) or oci")
	fs.IntVar(&f.jobs, "jobs", 0, "run at most `N` stages at once (default 0: every stage whose dependencies are done)")
	fs.StringVar(&f.network, "network", "default", "the network of RUN steps, `MODE`: default (isolated, outbound only), none or host")
	fs.StringArrayVar(&f.allow, "allow", nil, "grant an `ENTITLEMENT` the Dockerfile asks for: network.host lets RUN --network=host use the host's network (repeatable)")
	fs.StringArrayVar(&f.secrets, "secret", nil, "give RUN --mount=type=secret a secret, `SPEC`: id=ID,src=FILE, id=ID,env=VAR, or id=ID (the variable ID if set, else the file ID) (repeatable)")
	fs.StringArrayVar(&f.ssh, "ssh", nil, "forward an ssh agent to RUN --mount=type=ssh, `SPEC`: default (the agent of $SSH_AUTH_SOCK), ID=SOCKET or ID=KEYFILE (repeatable)")
	registerToolFlags(fs, &f.tool)
	return f
}

// buildConfig is a build command line turned into a build request.
type buildConfig struct {
	// req is what the flags decide; the build command adds the resolver,
	// the reporter and where "-" outputs go.
	req      executor.Request
	pull     registry.PullPolicy
	iidfile  string
	progress string // "plain", "tty", "rawjson" or "quiet"
	metadata string // --metadata-file
	// stdinContext is `build -`: the context is a tar archive on stdin
	// (or a Dockerfile, with no context), for contextFromStdin.
	stdinContext bool
	// pushes are where the image goes once built: the tags with --push,
	// and every -o type=registry name.
	pushes    []string
	insecure  []string
	cacheTo   []cacheSpec
	cacheFrom []cacheSpec
}

// cacheSpec is one --cache-to or --cache-from.
type cacheSpec struct {
	typ  string // "registry" or "local"
	ref  string // the registry ref, or the directory
	max  bool   // mode=max: every stage's steps
	spec string // as given, for messages
}

// buildConfig checks a build command line. Every error is a usage error.
func (env *environment) buildConfig(f *buildFlags, args []string) (*buildConfig, error) {
	if len(args) == 0 {
		return nil, usagef("missing build context (a directory, usually .)")
	}
	if len(args) > 1 {
		return nil, usagef("unexpected argument %q: build takes one context directory", args[1])
	}
	c := &buildConfig{iidfile: f.iidfile, metadata: f.tool.metadataFile}
	r := &c.req
	r.Dockerfile, r.Target = f.file, f.target
	err := c.setContext(args[0])
	if err != nil {
		return nil, err
	}
	for _, t := range f.tags {
		name, err := cache.NormalizeName(t)
		if err != nil {
			return nil, usagef("invalid tag %q: %v", t, err)
		}
		r.Tags = append(r.Tags, name)
	}
	if r.BuildArgs, err = env.buildArgs(f.buildArgs); err != nil {
		return nil, err
	}
	o := &r.Options
	if o.Labels, err = keyValues("--label", f.labels); err != nil {
		return nil, err
	}
	if o.SourceDateEpoch, err = env.sourceDateEpoch(r.BuildArgs); err != nil {
		return nil, err
	}
	if o.Platform, err = parsePlatform(f.platform); err != nil {
		return nil, err
	}
	o.NoCache, o.NoCacheStages = f.noCache, f.noCacheFilter
	if f.jobs < 0 {
		return nil, usagef("invalid --jobs %d (use 0 for no limit, or a positive number)", f.jobs)
	}
	o.Jobs = f.jobs
	if o.MaxLayers, err = checkMaxLayers(f.maxLayers); err != nil {
		return nil, err
	}
	switch {
	case f.squash && f.squashAll:
		return nil, usagef("--squash and --squash-all exclude each other: --squash keeps the base's layers, --squash-all does not")
	case f.squash:
		o.Squash = executor.SquashNew
	case f.squashAll:
		o.Squash = executor.SquashAll
	}
	if err := c.setNetwork(f.network, f.allow); err != nil {
		return nil, err
	}
	if err := env.setSecrets(o, f.secrets, f.ssh); err != nil {
		return nil, err
	}
	if o.Sandbox, err = f.tool.sandbox(); err != nil {
		return nil, err
	}
	if r.NamedContexts, err = f.tool.namedContexts(); err != nil {
		return nil, err
	}
	if f.pull {
		c.pull = registry.PullAlways
	}
	switch f.compression {
	case "gzip", "zstd", "none":
		o.Compression = cache.Compression{Format: f.compression}
	default:
		return nil, usagef("invalid --compression %q (use gzip, zstd or none)", f.compression)
	}
	switch f.format {
	case "":
		// zstd has no Docker media type; BuildKit turns to OCI for it too.
		o.Format = cache.FormatDocker
		if f.compression == "zstd" {
			o.Format = cache.FormatOCI
		}
	case "docker":
		if f.compression == "zstd" {
			return nil, usagef("--compression zstd needs --format oci: Docker media types have no zstd layer")
		}
		o.Format = cache.FormatDocker
	case "oci":
		o.Format = cache.FormatOCI
	default:
		return nil, usagef("invalid --format %q (use docker or oci)", f.format)
	}
	if f.push {
		if len(r.Tags) == 0 {
			return nil, usagef("--push needs a name to push to: give one with -t NAME")
		}
		c.pushes = append(c.pushes, r.Tags...)
	}
	for _, spec := range f.outputs {
		out, err := parseOutput(spec)
		if err != nil {
			return nil, err
		}
		if out.Type == "registry" {
			c.pushes = append(c.pushes, out.Name)
			continue
		}
		r.Outputs = append(r.Outputs, *out)
	}
	c.insecure = env.insecureRegistries(f.insecure)
	for _, spec := range f.cacheTo {
		cs, err := parseCacheSpec("--cache-to", spec, "dest")
		if err != nil {
			return nil, err
		}
		c.cacheTo = append(c.cacheTo, cs)
	}
	for _, spec := range f.cacheFrom {
		cs, err := parseCacheSpec("--cache-from", spec, "src")
		if err != nil {
			return nil, err
		}
		if cs.max {
			return nil, usagef("invalid --cache-from %q: mode is for --cache-to", spec)
		}
		c.cacheFrom = append(c.cacheFrom, cs)
	}
	if c.progress, err = env.progressMode(f.progress, f.quiet); err != nil {
		return nil, err
	}
	o.DebugKeys, _ = strconv.ParseBool(env.getenv("BUILDER_DEBUG_KEYS"))
	o.VerifyCache, _ = strconv.ParseBool(env.getenv("BUILDER_CACHE_VERIFY"))
	return c, nil
}

// setSecrets reads --secret and --ssh, as buildx reads them.
func (env *environment) setSecrets(o *executor.Options, secrets, ssh []string) error {
	for _, spec := range secrets {
		id, data, err := executor.ParseSecret(spec, env.lookupEnv)
		if err != nil {
			return usagef("%v", err)
		}
		if o.Secrets == nil {
			o.Secrets = map[string][]byte{}
		}
		o.Secrets[id] = data
	}
	for _, spec := range ssh {
		id, sock, err := executor.ParseSSH(spec, env.lookupEnv)
		if err != nil {
			return usagef("%v", err)
		}
		if o.SSH == nil {
			o.SSH = map[string]string{}
		}
		o.SSH[id] = sock
	}
	return nil
}

// setContext reads the context argument: a directory, or "-" for a tar
// archive (or a Dockerfile) on stdin, which the build command reads.
func (c *buildConfig) setContext(arg string) error {
	switch {
	case arg == "-" && c.req.Dockerfile == "-":
		return usagef("the context and the Dockerfile cannot both come from stdin (-f - with a context directory, or - alone)")
	case arg == "-":
		c.stdinContext = true
		return nil
	case isURLContext(arg):
		return usagef("a URL or git repository as the build context is not supported: clone or download it, then give its directory")
	}
	dir, err := filepath.Abs(arg)
	c.req.ContextDir = dir
	return err
}

// setNetwork reads --network and --allow, with BuildKit's names.
func (c *buildConfig) setNetwork(network string, allow []string) error {
	switch network {
	case "default", "":
		c.req.Options.Network = executor.NetworkDefault
	case "none", "host":
		c.req.Options.Network = network
	default:
		return usagef("invalid --network %q (use default, none or host)", network)
	}
	for _, a := range allow {
		switch a {
		case "network.host":
			c.req.Options.AllowNetworkHost = true
		case "security.insecure":
			return usagef("--allow security.insecure is not supported: RUN --security=insecure would give a step the host's privileges")
		default:
			return usagef("invalid --allow %q (the one entitlement is network.host)", a)
		}
	}
	return nil
}

// buildArgs reads --build-arg values: K=V sets K, and a bare K takes its
// value from the environment, or is skipped when the variable is unset,
// as docker does.
func (env *environment) buildArgs(list []string) (map[string]string, error) {
	args := map[string]string{}
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if k == "" || strings.TrimSpace(k) != k {
			return nil, usagef("invalid --build-arg %q: want NAME=VALUE or NAME", a)
		}
		if !ok {
			if v, ok = env.lookupEnv(k); !ok {
				continue
			}
		}
		args[k] = v
	}
	return args, nil
}

// keyValues reads K=V flags; a bare K means an empty value.
func keyValues(flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, a := range list {
		k, v, _ := strings.Cut(a, "=")
		if k == "" {
			return nil, usagef("invalid %s %q: want NAME=VALUE", flag, a)
		}
		m[k] = v
	}
	return m, nil
}

// sourceDateEpoch is SOURCE_DATE_EPOCH from --build-arg, which BuildKit
// also accepts, or else from the environment.
func (env *environment) sourceDateEpoch(buildArgs map[string]string) (*time.Time, error) {
	v, ok := buildArgs["SOURCE_DATE_EPOCH"]
	if !ok {
		v = env.getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, usagef("invalid SOURCE_DATE_EPOCH %q: want a number of seconds since 1970-01-01", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// parsePlatform reads --platform; "" is the host's.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	if strings.Contains(s, ",") {
		return v1.Platform{}, usagef("invalid --platform %q: building for several platforms at once is not supported", s)
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, usagef("invalid --platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", s)
	}
	return *p, nil
}

// parseOutput reads --output's CSV form, type=T,dest=PATH[,name=NAME];
// dest=- is stdout, which the build command fills in.
func parseOutput(s string) (*executor.Output, error) {
	o := &executor.Output{}
	if !strings.Contains(s, "=") {
		// docker reads a bare path as type=local,dest=PATH, and - as
		// type=tar to stdout.
		if s == "-" {
			return &executor.Output{Type: executor.OutputTar, Dest: "-"}, nil
		}
		return &executor.Output{Type: executor.OutputLocal, Dest: s}, nil
	}
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return nil, usagef("invalid --output %q: want KEY=VALUE fields (type, dest, name), or a directory", s)
		}
		switch strings.TrimSpace(k) {
		case "type":
			o.Type = v
		case "dest":
			o.Dest = v
		case "name":
			o.Name = v
		default:
			return nil, usagef("invalid --output %q: unknown key %q (use type, dest and name)", s, k)
		}
	}
	switch o.Type {
	case "oci", "docker", "oci-layout", executor.OutputLocal, executor.OutputTar:
	case "registry":
		if o.Name == "" || o.Dest != "" {
			return nil, usagef("invalid --output %q: type=registry takes name=REF and no dest", s)
		}
		if err := checkTagRef(o.Name); err != nil {
			return nil, usagef("invalid --output %q: %v", s, err)
		}
		return o, nil
	case "":
		return nil, usagef("invalid --output %q: missing type= (oci, docker, oci-layout, local, tar or registry)", s)
	default:
		return nil, usagef("--output type=%s is not supported (use type=oci, type=docker, type=oci-layout, type=local, type=tar or type=registry)", o.Type)
	}
	if o.Dest == "" {
		return nil, usagef("invalid --output %q: missing dest=PATH", s)
	}
	if (o.Type == "oci-layout" || o.Type == executor.OutputLocal) && o.Dest == "-" {
		return nil, usagef("invalid --output %q: type=%s is a directory and cannot go to stdout", s, o.Type)
	}
	return o, nil
}

// checkTagRef accepts an image reference that names a tag: a push needs
// one, and a digest would fail only once the build is done.
func checkTagRef(ref string) error {
	r, err := registry.ParseReference(ref, nil)
	if err != nil {
		return err
	}
	if _, ok := r.(name.Tag); !ok {
		return errors.New("a digest cannot be pushed to; name a tag")
	}
	return nil
}

// parseCacheSpec reads a --cache-to or --cache-from value in buildx's
// syntax; dirKey is the key of a local directory (dest or src). A bare
// value is a registry ref, as docker reads it.
func parseCacheSpec(flag, spec, dirKey string) (cacheSpec, error) {
	cs := cacheSpec{spec: spec}
	if !strings.Contains(spec, "=") {
		cs.typ, cs.ref = "registry", spec
	} else {
		for _, field := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch k = strings.TrimSpace(k); {
			case k == "type":
				cs.typ = v
			case k == "ref" || k == dirKey:
				cs.ref = v
			case k == "mode":
				switch v {
				case "min":
				case "max":
					cs.max = true
				default:
					return cs, usagef("invalid %s %q: mode=%s (use min or max)", flag, spec, v)
				}
			default:
				return cs, usagef("invalid %s %q: unknown key %q (use type, ref or %s, and mode)", flag, spec, k, dirKey)
			}
		}
	}
	switch cs.typ {
	case "registry":
		check := checkTagRef // an export is a push
		if flag == "--cache-from" {
			check = func(ref string) error { _, err := registry.ParseReference(ref, nil); return err }
		}
		if err := check(cs.ref); err != nil {
			return cs, usagef("invalid %s %q: ref=%q: %v", flag, spec, cs.ref, err)
		}
	case "local":
		if cs.ref == "" {
			return cs, usagef("invalid %s %q: type=local needs %s=DIR", flag, spec, dirKey)
		}
	case "":
		return cs, usagef("invalid %s %q: missing type= (registry or local)", flag, spec)
	default:
		return cs, usagef("%s type=%s is not supported (use type=registry or type=local)", flag, cs.typ)
	}
	return cs, nil
}

// progressMode picks the renderer: on a terminal a live view, unless in
// CI or plainTerminal says otherwise; elsewhere plain lines.
func (env *environment) progressMode(p string, quiet bool) (string, error) {
	switch p {
	case "auto", "plain", "tty", "rawjson", "quiet":
	default:
		return "", usagef("invalid --progress %q (use auto, plain, tty, rawjson or quiet)", p)
	}
	switch {
	case quiet || p == "quiet":
		return "quiet", nil
	case p == "rawjson":
		return p, nil
	case p == "plain" || env.inCI() || (p == "auto" && env.plainTerminal()):
		return "plain", nil
	case p == "tty" || env.stderrTTY:
		return "tty", nil
	}
	return "plain", nil
}

// --- the other commands ---

type historyOptions struct{ noTrunc bool }

func registerHistoryFlags(fs *pflag.FlagSet) *historyOptions {
	o := &historyOptions{}
	fs.BoolVar(&o.noTrunc, "no-trunc", false, "do not shorten IDs and commands")
	return o
}

type saveFlags struct{ output, format string }

type saveOptions struct {
	output string // a file, or "-" for stdout
	format cache.Format
}

func registerSaveFlags(fs *pflag.FlagSet) *saveFlags {
	f := &saveFlags{}
	fs.StringVarP(&f.output, "output", "o", "", "write the archive to `FILE` (- for stdout)")
	fs.StringVar(&f.format, "format", "docker", "archive `FORMAT`: docker (for docker/podman load) or oci")
	return f
}

func (f *saveFlags) options() (saveOptions, error) {
	o := saveOptions{output: f.output}
	switch f.format {
	case "docker":
		o.format = cache.FormatDocker
	case "oci":
		o.format = cache.FormatOCI
	default:
		return o, usagef("invalid --format %q (use docker or oci)", f.format)
	}
	if o.output == "" {
		return o, usagef("missing -o FILE (use -o - for stdout)")
	}
	return o, nil
}

type pruneFlags struct {
	all, force  bool
	keepStorage string
	filters     []string
	mountsOnly  bool // --filter type=exec.cachemount, read by options
}

func registerPruneFlags(fs *pflag.FlagSet) *pruneFlags {
	f := &pruneFlags{}
	fs.BoolVarP(&f.all, "all", "a", false, "remove every cache entry and snapshot, not only unused ones")
	fs.StringVar(&f.keepStorage, "keep-storage", "", "remove least recently used entries until the cache takes at most `SIZE` (e.g. 10GB, 512MB)")
	fs.StringArrayVar(&f.filters, "filter", nil, "`FILTER`: until=DURATION, only entries unused for longer than DURATION (e.g. 24h, 7d); type=exec.cachemount, only RUN --mount=type=cache directories")
	fs.BoolVarP(&f.force, "force", "f", false, "accepted for docker's scripts: prune never asks")
	return f
}

func (f *pruneFlags) options() (cache.PruneOptions, error) {
	o := cache.PruneOptions{All: f.all}
	if f.keepStorage != "" {
		n, err := parseSize(f.keepStorage)
		if err != nil {
			return o, usagef("invalid --keep-storage: %v", err)
		}
		o.KeepStorage = n
	}
	for _, filter := range f.filters {
		k, v, _ := strings.Cut(filter, "=")
		if k == "type" && v == "exec.cachemount" {
			f.mountsOnly = true
			continue
		}
		if k != "until" {
			return o, usagef("invalid --filter %q: use until=DURATION or type=exec.cachemount", filter)
		}
		d, err := parseDuration(v)
		if err != nil {
			return o, usagef("invalid --filter %q: %v", filter, err)
		}
		o.Until = d
	}
	if f.mountsOnly && (o.All || o.KeepStorage > 0 || o.Until > 0) {
		return o, usagef("--filter type=exec.cachemount removes the cache mounts only: it takes no other filter, --all or --keep-storage")
	}
	return o, nil
}

// registerInsecureFlag adds --insecure-registry, which build, pull, push
// and login share.
func registerInsecureFlag(fs *pflag.FlagSet, hosts *[]string) {
	fs.StringArrayVar(hosts, "insecure-registry", nil, "reach registry `HOST[:PORT]` over plain HTTP (repeatable)")
}

// insecureRegistries is the --insecure-registry flags and the
// comma-separated BUILDER_INSECURE_REGISTRIES.
func (env *environment) insecureRegistries(flags []string) []string {
	out := append([]string(nil), flags...)
	for _, h := range strings.Split(env.getenv("BUILDER_INSECURE_REGISTRIES"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

type pullFlags struct {
	platform string
	insecure []string
}

func registerPullFlags(fs *pflag.FlagSet) *pullFlags {
	f := &pullFlags{}
	fs.StringVar(&f.platform, "platform", "", "the `PLATFORM` to pull from a multi-platform image (default the host's)")
	registerInsecureFlag(fs, &f.insecure)
	return f
}

// options returns the registry options of a pull; nil Platform means the
// host's.
func (f *pullFlags) options(env *environment) (registry.Options, error) {
	o := registry.Options{Insecure: env.insecureRegistries(f.insecure)}
	if f.platform != "" {
		p, err := v1.ParsePlatform(f.platform)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return o, usagef("invalid --platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", f.platform)
		}
		o.Platform = p
	}
	return o, nil
}

type duOptions struct{ verbose bool }

func registerDuFlags(fs *pflag.FlagSet) *duOptions {
	o := &duOptions{}
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "also list every image and snapshot")
	return o
}

// --- values ---

// maxLayerSize reads BUILDER_MAX_LAYER_SIZE, the cap on one layer's (or
// ADD archive's) uncompressed size: a size such as 100GB, unset for the
// default (snapshot.DefaultMaxLayerSize), "none" for no cap.
func (env *environment) maxLayerSize() (int64, error) {
	v := strings.TrimSpace(env.getenv("BUILDER_MAX_LAYER_SIZE"))
	switch v {
	case "":
		return 0, nil
	case "none":
		return -1, nil
	}
	n, err := parseSize(v)
	if err != nil || n == 0 {
		return 0, usagef("invalid BUILDER_MAX_LAYER_SIZE %q: want a size such as 100GB, or none", v)
	}
	return n, nil
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([kKmMgGtTpP]?)([iI]?)([bB]?)$`)

// parseSize reads a size such as 10GB, 512MB, 1.5g or 4096. Like docker's
// --keep-storage, the units are binary: 1KB is 1024 bytes, 1GB 1024³.
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit (B, KB, MB, GB, TB, PB)", s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	if m[2] == "" && m[3] != "" {
		return 0, fmt.Errorf("invalid size %q: unit %q needs a prefix such as Ki or Gi", s, m[3]+m[4])
	}
	exp := 0
	if m[2] != "" {
		exp = strings.Index("kmgtp", strings.ToLower(m[2])) + 1
	}
	v := n * math.Pow(1024, float64(exp))
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}

// parseDuration reads a Go duration (90m, 24h) or a number of days (7d),
// which prune filters often want.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("missing duration (e.g. 24h, 7d)")
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (e.g. 24h, 90m, 7d)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q (e.g. 24h, 90m, 7d)", s)
	}
	return d, nil
}

// registerMaxLayersFlag registers --max-layers, for build and flatten.
func registerMaxLayersFlag(fs *pflag.FlagSet, n *int, def int) {
	fs.IntVar(n, "max-layers", def, "merge layers so that the image has at most `N` (docs/layers.md)")
}

// checkMaxLayers refuses a --max-layers below 1: an image needs a layer
// to hold its files, and 0 would read as "no limit" elsewhere.
func checkMaxLayers(n int) (int, error) {
	if n < 1 {
		return 0, usagef("invalid --max-layers %d: an image needs at least 1 layer (the default is %d, docker's limit)", n, executor.DefaultMaxLayers)
	}
	return n, nil
}
