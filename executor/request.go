package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/store"
)

// Request is one build as a user asks for it: which Dockerfile, which
// context, with which arguments, and what to do with the image. It is the
// one place a build's options are filled in: the command line and the
// tests both go through Prepare and Run.
type Request struct {
	// ContextDir is the build context, a directory.
	ContextDir string
	// Dockerfile is the Dockerfile's path; "" is ContextDir/Dockerfile,
	// "-" reads Stdin.
	Dockerfile string
	Stdin      io.Reader
	// BuildArgs, Target: as --build-arg and --target.
	BuildArgs map[string]string
	Target    string
	// Options holds the rest of the build's settings. Its Platform is the
	// target platform (default the host's): Prepare gives the parser the
	// same value, so TARGET* args and the image agree. Store, ContextDir
	// and Ignore are filled by Prepare and Run.
	Options Options
	// Tags name the image (already normalised, see cache.NormalizeName).
	Tags []string
	// Outputs are exports of the image, made once it is tagged.
	Outputs []Output
	// NamedContexts are the --build-context values by name: an image, or
	// a directory that COPY --from reads as it reads the build context.
	NamedContexts map[string]parser.NamedContext
}

// Output is an export of the built image.
type Output struct {
	// Type is "docker" (a docker-load archive), "oci" (an OCI archive),
	// "oci-layout" (an OCI layout directory at Dest), or the image's
	// final filesystem: OutputLocal (a directory) or OutputTar.
	Type string
	// Dest is a file, written atomically, or the layout's directory; with
	// Writer set, the archive goes there instead.
	Dest   string
	Writer io.Writer
	// Name is recorded in the archive; default the first tag.
	Name string
}

// Prepared is a request whose Dockerfile is parsed and whose ignore file
// is read: everything that can be wrong with the request itself is known
// before the store is opened.
type Prepared struct {
	Plan   *parser.Plan
	req    Request
	ignore *parser.Ignore
}

// Prepare reads and checks the request's context, Dockerfile and ignore
// file. Errors name what is wrong with the request.
func Prepare(req Request) (*Prepared, error) {
	if req.Options.Platform.OS == "" {
		req.Options.Platform.OS = "linux"
	}
	if req.Options.Platform.Architecture == "" {
		req.Options.Platform.Architecture = runtime.GOARCH
	}
	if fi, err := os.Stat(req.ContextDir); err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", req.ContextDir)
	}
	for name, nc := range req.NamedContexts {
		if nc.Dir == "" {
			continue
		}
		if fi, err := os.Stat(nc.Dir); err != nil {
			return nil, fmt.Errorf("build context %s: %w", name, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("build context %s: %s is not a directory", name, nc.Dir)
		}
	}
	if req.Dockerfile == "" {
		req.Dockerfile = filepath.Join(req.ContextDir, "Dockerfile")
	}
	plan, err := req.parse()
	if err != nil {
		return nil, err
	}
	if err := checkPlan(plan, &req.Options); err != nil {
		return nil, err
	}
	ignore, err := req.readIgnore()
	if err != nil {
		return nil, err
	}
	return &Prepared{Plan: plan, req: req, ignore: ignore}, nil
}

func (req *Request) parse() (*parser.Plan, error) {
	opts := parser.Options{
		Filename:       "Dockerfile",
		BuildArgs:      req.BuildArgs,
		Target:         req.Target,
		BuildPlatform:  hostPlatform().String(),
		TargetPlatform: req.Options.Platform.String(),
		NamedContexts:  req.NamedContexts,
	}
	r := req.Stdin
	if req.Dockerfile != "-" {
		opts.Filename = filepath.Base(req.Dockerfile)
		f, err := os.Open(req.Dockerfile)
		if err != nil {
			return nil, fmt.Errorf("reading the Dockerfile: %w", err)
		}
		defer f.Close()
		r = f
	} else if r == nil {
		return nil, errors.New("reading the Dockerfile: no standard input")
	}
	return parser.Parse(r, opts)
}

// hostPlatform is the platform of the machine that builds, which
// BUILDPLATFORM and its kin name.
func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// readIgnore reads the ignore file, as docker picks it: <Dockerfile>.dockerignore
// beside the Dockerfile if there is one, else CONTEXT/.dockerignore, else
// none.
func (req *Request) readIgnore() (*parser.Ignore, error) {
	var candidates []string
	if req.Dockerfile != "-" {
		candidates = append(candidates, req.Dockerfile+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(req.ContextDir, ".dockerignore"))
	for _, p := range candidates {
		ig, err := readIgnoreFile(p)
		if err != nil || ig != nil {
			return ig, err
		}
	}
	return nil, nil
}

// readIgnoreFile reads one ignore file; nil when there is none.
func readIgnoreFile(p string) (*parser.Ignore, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading ignore file: %w", err)
	}
	defer f.Close()
	ig, err := parser.ParseIgnore(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return ig, nil
}

// Options are the request's build options, to set what needs the plan
// or the opened store before Run: the Reporter (how many stages, say)
// and the Resolver (which pulls into the store).
func (p *Prepared) Options() *Options { return &p.req.Options }

// Run builds the prepared request in st, then tags and exports the image,
// all under the store's build lock, so that no prune can remove the image
// before it is named.
func (p *Prepared) Run(ctx context.Context, st *store.Store) (*Result, error) {
	opts := p.req.Options
	opts.Store = st
	opts.ContextDir = p.req.ContextDir
	opts.Ignore = p.ignore
	if err := opts.check(); err != nil {
		return nil, err
	}
	var res *Result
	err := st.Build(ctx, func() error {
		var err error
		if res, err = buildPlan(ctx, p.Plan, opts); err != nil {
			return err
		}
		return p.deliver(ctx, st, res.Image, opts.FetchLayer)
	})
	return res, err
}

// deliver tags the image and writes the outputs.
func (p *Prepared) deliver(ctx context.Context, st *store.Store, rec cache.ImageRecord, fetch func(context.Context, cache.Layer) error) error {
	c := st.Cache()
	for _, t := range p.req.Tags {
		if err := c.Tag(t, rec.Manifest); err != nil {
			return fmt.Errorf("tagging %s: %w", t, err)
		}
	}
	if len(p.req.Outputs) > 0 {
		if err := FetchMissing(ctx, c, rec, fetch); err != nil {
			return err
		}
	}
	for _, o := range p.req.Outputs {
		if o.Name == "" && len(p.req.Tags) > 0 {
			o.Name = p.req.Tags[0]
		}
		if o.Type == OutputLocal || o.Type == OutputTar {
			if err := exportFS(ctx, st, rec, o); err != nil {
				return err
			}
			continue
		}
		if err := Export(ctx, c, rec, o); err != nil {
			return err
		}
	}
	return nil
}

// FetchMissing brings into the store the layers of rec that it lists
// without holding (--cache-from hits no step ran on), so that the image
// can be written out whole.
func FetchMissing(ctx context.Context, c *cache.Store, rec cache.ImageRecord, fetch func(context.Context, cache.Layer) error) error {
	img, err := c.Image(rec.Manifest.Digest)
	if err != nil {
		return fmt.Errorf("opening image %s: %w", rec.ID, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	for i, l := range m.Layers {
		if c.HasLayer(l) {
			continue
		}
		if fetch == nil || i >= len(cfg.RootFS.DiffIDs) {
			return fmt.Errorf("layer %s of image %s: %w", l.Digest, rec.ID, cache.ErrNotFound)
		}
		if err := fetch(ctx, cache.Layer{Descriptor: l, DiffID: cfg.RootFS.DiffIDs[i]}); err != nil {
			return err
		}
	}
	return nil
}

// Export writes a stored image as o says: a layout directory, an archive
// to o.Writer, or an archive file that appears only once it is complete.
//
// Held layers are compressed on the way (see cache/held.go).
func Export(ctx context.Context, c *cache.Store, rec cache.ImageRecord, o Output) error {
	img, err := c.Outgoing(ctx, rec.Manifest.Digest)
	if err != nil {
		return fmt.Errorf("opening image %s: %w", rec.ID, err)
	}
	switch o.Type {
	case "oci-layout":
		if err := cache.ExportLayout(o.Dest, img, o.Name); err != nil {
			return fmt.Errorf("exporting to %s: %w", o.Dest, err)
		}
		return nil
	case string(cache.FormatDocker), string(cache.FormatOCI):
	default:
		return fmt.Errorf("unknown output type %q (use docker, oci or oci-layout)", o.Type)
	}
	if o.Writer != nil {
		return cache.Export(o.Writer, img, o.Name, cache.Format(o.Type))
	}
	err = fsutil.WriteAtomic(o.Dest, 0o644, func(w io.Writer) error {
		return cache.Export(w, img, o.Name, cache.Format(o.Type))
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.Dest, err)
	}
	return nil
}
