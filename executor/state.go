package executor

import (
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// maxConfigText caps the text a stage's image config accumulates: its
// environment, labels and history. The parser caps each word and each
// instruction, but a Dockerfile of many steps adds to the config at every
// one; 64 MiB is four times the largest Dockerfile the parser reads.
const maxConfigText = 64 << 20

// defaultPath is the PATH docker gives a RUN step whose image sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// imageState is an image being built by a stage: its config and layers so
// far, and the cache keys that identify them.
type imageState struct {
	cfg    v1.ConfigFile // RootFS is filled in by config()
	layers []cache.Layer
	// baseLayers counts the layers of the FROM image at the bottom of
	// layers, which merging leaves alone (planLayers).
	baseLayers int
	// fsKey identifies the filesystem: the key of the last step that could
	// change it (FROM, RUN, COPY, ADD, WORKDIR). Filesystem steps chain on
	// it, so a changed LABEL or EXPOSE does not invalidate a later RUN,
	// while ENV, ARG, USER, WORKDIR and SHELL reach RUN keys through the
	// fields they change.
	fsKey cache.Key
	// lastKey is the key of the last step of any kind; metadata steps
	// chain on it only to keep their recorded history times.
	lastKey cache.Key
	// args are the ARGs in scope, in declaration order; a nil value is
	// declared without one.
	args   []argValue
	cmdSet bool // CMD was set in this stage (ENTRYPOINT then keeps it)
	// steps are the cached steps that made this state, a FROM stage's
	// included, for a cache export.
	steps []cache.Step
}

type argValue struct {
	key   string
	value *string
}

// clone returns a deep copy, for a stage built FROM another stage.
func (s *imageState) clone() *imageState {
	c := *s
	c.cfg = *cloneConfigFile(&s.cfg)
	c.layers = slices.Clone(s.layers)
	c.steps = slices.Clone(s.steps)
	c.args = nil
	c.cmdSet = false
	return &c
}

// config returns the image config, with RootFS listing the layers.
func (s *imageState) config() *v1.ConfigFile {
	c := cloneConfigFile(&s.cfg)
	c.RootFS = v1.RootFS{Type: "layers", DiffIDs: make([]v1.Hash, len(s.layers))}
	for i, l := range s.layers {
		c.RootFS.DiffIDs[i] = l.DiffID
	}
	return c
}

// created is the image's creation time: SOURCE_DATE_EPOCH when set, else
// the time of its newest history entry, so that rebuilding an unchanged
// Dockerfile gives the same image ID.
func (s *imageState) created(epoch *time.Time) time.Time {
	if epoch != nil {
		return epoch.UTC()
	}
	var t time.Time
	for _, h := range s.cfg.History {
		if h.Created.After(t) {
			t = h.Created.Time
		}
	}
	if t.IsZero() {
		t = time.Now().UTC()
	}
	return t
}

// chain lists the snapshot IDs of the layers, bottom first.
func (s *imageState) chain() []snapshot.ID {
	ids := make([]snapshot.ID, len(s.layers))
	for i, l := range s.layers {
		ids[i] = snapshot.ID(l.DiffID.Hex)
	}
	return ids
}

// expandEnv is the environment variables expand against: the ARGs in
// scope, then ENV, which wins over an ARG of the same name.
func (s *imageState) expandEnv() []string {
	env := make([]string, 0, len(s.args)+len(s.cfg.Config.Env))
	for _, a := range s.args {
		if a.value != nil {
			env = append(env, a.key+"="+*a.value)
		}
	}
	return append(env, s.cfg.Config.Env...)
}

// checkSize refuses a stage whose environment is larger than
// parser.MaxEnvSize, the base image's ENV included, or whose config text
// is larger than maxConfigText.
func (s *imageState) checkSize() error {
	env := s.expandEnv()
	if err := parser.CheckEnvSize(env); err != nil {
		return err
	}
	n := 0
	for _, kv := range env {
		n += len(kv)
	}
	for k, v := range s.cfg.Config.Labels {
		n += len(k) + len(v)
	}
	for _, h := range s.cfg.History {
		n += len(h.CreatedBy) + len(h.Comment) + len(h.Author)
	}
	if n > maxConfigText {
		return fmt.Errorf("the image config (environment, labels and history) would be larger than %d MiB", maxConfigText>>20)
	}
	return nil
}

// runEnv is the environment of a RUN step: ENV, plus the ARGs in scope
// that ENV does not set, plus the proxy build args (parser.Plan.ProxyEnv)
// that neither sets, plus a default PATH.
func (s *imageState) runEnv(proxy []string) []string {
	env := slices.Clone(s.cfg.Config.Env)
	for _, a := range s.args {
		if a.value != nil && envValue(env, a.key) == nil {
			env = append(env, a.key+"="+*a.value)
		}
	}
	for _, kv := range proxy {
		if k, _, _ := strings.Cut(kv, "="); envValue(env, k) == nil {
			env = append(env, kv)
		}
	}
	if envValue(env, "PATH") == nil {
		env = append(env, defaultPath)
	}
	return env
}

// keyEnv is runEnv without the proxy build args, which docker keeps out
// of the cache key so a proxy change does not rebuild everything.
func (s *imageState) keyEnv() []string { return s.runEnv(nil) }

func (s *imageState) arg(key string) *argValue {
	for i := range s.args {
		if s.args[i].key == key {
			return &s.args[i]
		}
	}
	return nil
}

func (s *imageState) setArg(key string, value *string) {
	if a := s.arg(key); a != nil {
		a.value = value
		return
	}
	s.args = append(s.args, argValue{key: key, value: value})
}

// setEnv sets key in ENV, replacing an earlier value in place.
func (s *imageState) setEnv(key, value string) {
	for i, kv := range s.cfg.Config.Env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			s.cfg.Config.Env[i] = key + "=" + value
			return
		}
	}
	s.cfg.Config.Env = append(s.cfg.Config.Env, key+"="+value)
}

// shell is the SHELL in effect.
func (s *imageState) shell() []string {
	if len(s.cfg.Config.Shell) > 0 {
		return s.cfg.Config.Shell
	}
	return []string{"/bin/sh", "-c"}
}

// workdir is the WORKDIR in effect, "/" by default.
func (s *imageState) workdir() string {
	if s.cfg.Config.WorkingDir == "" {
		return "/"
	}
	return s.cfg.Config.WorkingDir
}

func envValue(env []string, key string) *string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return &v
		}
	}
	return nil
}

func cloneConfigFile(c *v1.ConfigFile) *v1.ConfigFile {
	n := *c
	n.History = slices.Clone(c.History)
	n.OSFeatures = slices.Clone(c.OSFeatures)
	n.RootFS.DiffIDs = slices.Clone(c.RootFS.DiffIDs)
	n.Config = cloneConfig(c.Config)
	return &n
}

func cloneConfig(c v1.Config) v1.Config {
	n := c
	n.Cmd = slices.Clone(c.Cmd)
	n.Entrypoint = slices.Clone(c.Entrypoint)
	n.Env = slices.Clone(c.Env)
	n.OnBuild = slices.Clone(c.OnBuild)
	n.Shell = slices.Clone(c.Shell)
	n.Labels = cloneMap(c.Labels)
	n.Volumes = cloneMap(c.Volumes)
	n.ExposedPorts = cloneMap(c.ExposedPorts)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(c.Healthcheck.Test)
		n.Healthcheck = &h
	}
	return n
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	n := make(map[string]V, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n
}
