package executor

import (
	"context"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/store"
)

// Resolver finds the image a FROM (or COPY --from=<image>) names, making
// sure its blobs are in the store. registry.NewResolver is the one
// programs use: the local store first, else a pull.
type Resolver interface {
	Resolve(ctx context.Context, ref string, platform v1.Platform) (cache.ImageRecord, error)
}

// ProgressResolver is a Resolver that can report the bytes it downloads;
// FROM shows them as the step's progress.
type ProgressResolver interface {
	ResolveWithProgress(ctx context.Context, ref string, platform v1.Platform, progress func(label string, current, total int64)) (cache.ImageRecord, error)
}

// Options configure a build.
type Options struct {
	// Store is the local store the build reads and writes; Build holds
	// its build lock throughout.
	Store    *store.Store
	Resolver Resolver
	Reporter Reporter // default Discard

	// ContextDir is the build context directory.
	ContextDir string
	// Ignore holds the context's .dockerignore rules; nil excludes nothing.
	Ignore *parser.Ignore
	// Labels are the --label values, added to the final image.
	Labels map[string]string
	// Platform is the target platform; default linux/<host arch>.
	Platform v1.Platform
	// NoCache rebuilds every step; NoCacheStages rebuilds the named stages.
	NoCache       bool
	NoCacheStages []string
	// SourceDateEpoch, when set, clamps file times in new layers and sets
	// the image's created time, for reproducible digests.
	SourceDateEpoch *time.Time
	Compression     cache.Compression
	// CacheImports are step-cache entries from elsewhere (--cache-from),
	// consulted when the store has none. Their layers may be absent from
	// the store: FetchLayer brings one when a step must run on it.
	CacheImports map[cache.Key]cache.Entry
	FetchLayer   func(ctx context.Context, l cache.Layer) error
	// Format is the image's media types when it leaves the machine:
	// cache.FormatDocker (the default, as docker build, unless layers are
	// zstd) or cache.FormatOCI.
	Format cache.Format
	// Jobs bounds how many stages run at once; 0 means no bound, as in
	// BuildKit: stages mostly wait (on RUN commands, pulls, disks), so
	// the CPU count is a poor limit.
	Jobs int
	// Network is the network of RUN steps that do not ask for one:
	// NetworkDefault (""), NetworkNone or NetworkHost.
	Network string
	// AllowNetworkHost lets RUN --network=host have the host's network;
	// without it such a Dockerfile is refused before any step runs.
	AllowNetworkHost bool
	// Secrets are the values RUN --mount=type=secret reads, by id
	// (--secret; see ParseSecret). They reach no layer, key, history,
	// event or file of the store.
	Secrets map[string][]byte
	// SSH are the ssh agent sockets RUN --mount=type=ssh forwards, by id
	// ("default" for --ssh default; see ParseSSH).
	SSH map[string]string
	// Sandbox is what RUN containers get besides their network: extra
	// /etc/hosts entries, the size of /dev/shm, resource limits.
	Sandbox Sandbox
	// DebugKeys adds the fields of every cache key to the log events.
	DebugKeys bool
	// MaxLayers bounds the image's layers: 0 means DefaultMaxLayers, a
	// negative value no bound. Deeper images have layers merged after the
	// last step (docs/layers.md).
	MaxLayers int
	// Squash merges the build's layers (SquashNew) or the whole image
	// (SquashAll) into one layer.
	Squash Squash
	// VerifyCache runs the steps that hit the cache anyway and warns when
	// the layer they make differs from the cached one: a cache key that
	// misses an input shows up here (BUILDER_CACHE_VERIFY=1).
	VerifyCache bool
}

// Result is a built image, complete in the store, tagged and exported as
// the request asked.
type Result struct {
	Image  cache.ImageRecord
	Config *v1.ConfigFile
	// Steps are the target image's cached steps, those of the stages it
	// is built FROM included (a min cache export); AllSteps adds every
	// other stage's (a max export).
	Steps, AllSteps []cache.Step
}
