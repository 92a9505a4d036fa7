package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/registry"
)

// buildMetadata is what --metadata-file holds, with buildx's keys, so
// that tools reading buildx's file read ours.
type buildMetadata struct {
	ConfigDigest string        `json:"containerimage.config.digest"`
	Digest       string        `json:"containerimage.digest"`
	Descriptor   v1.Descriptor `json:"containerimage.descriptor"`
	Names        string        `json:"image.name,omitempty"`
}

// writeMetadata writes --metadata-file. The digest is the manifest's in
// the store, or, when the image was pushed, the pushed manifest's (a
// docker-format push sends another manifest than the store holds), as
// buildx reports what the registry has.
func writeMetadata(cfg *buildConfig, img cache.ImageRecord, pushed []registry.PushReport) error {
	if cfg.metadata == "" {
		return nil
	}
	m := buildMetadata{ConfigDigest: img.ID.String(), Descriptor: img.Manifest}
	// pushAll's reports are in the order of its jobs: the image's
	// pushes first, then cache exports.
	if len(cfg.pushes) > 0 && len(pushed) >= len(cfg.pushes) {
		m.Descriptor = pushed[0].Manifest
	}
	m.Descriptor.Annotations, m.Descriptor.Platform = nil, nil
	m.Digest = m.Descriptor.Digest.String()
	var names []string
	for _, n := range append(append([]string(nil), cfg.req.Tags...), cfg.pushes...) {
		full := fullName(n)
		if !slices.Contains(names, full) {
			names = append(names, full)
		}
	}
	m.Names = strings.Join(names, ",")
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(cfg.metadata, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing --metadata-file: %w", err)
	}
	return nil
}

// fullName is a reference as buildx writes it: docker.io/library/app:latest.
func fullName(ref string) string {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return ref
	}
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + r.Context().RepositoryStr() + r.Name()[len(r.Context().Name()):]
}
