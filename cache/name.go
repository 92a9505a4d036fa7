package cache

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// NormalizeName turns a user's image name into the store's familiar form:
// "app" → "app:latest", "docker.io/library/app:1" → "app:1",
// "localhost:5000/x" → "localhost:5000/x:latest". A digest reference
// stays a digest reference.
func NormalizeName(s string) (string, error) {
	ref, err := parseName(s)
	if err != nil {
		return "", err
	}
	return familiar(ref), nil
}

func parseName(s string) (name.Reference, error) {
	if s == "" || strings.TrimSpace(s) != s {
		return nil, fmt.Errorf("invalid image name %q", s)
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		if repo := repoPath(s); repo != strings.ToLower(repo) {
			if _, lowerErr := name.ParseReference(strings.ToLower(s)); lowerErr == nil {
				// As docker words it, which ggcr does not.
				return nil, fmt.Errorf("invalid image name %q: repository name (%s) must be lowercase", s, repo)
			}
		}
		return nil, fmt.Errorf("invalid image name %q: %w", s, err)
	}
	return ref, nil
}

// repoPath is the repository part of a reference as written: no
// registry host, tag or digest.
func repoPath(s string) string {
	s, _, _ = strings.Cut(s, "@")
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		s = s[:i]
	}
	if host, rest, ok := strings.Cut(s, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		return rest
	}
	return s
}

// familiar is the short form docker shows: Docker Hub's registry and its
// "library/" namespace are left out.
func familiar(ref name.Reference) string {
	repo := ref.Context().RepositoryStr()
	if reg := ref.Context().RegistryStr(); reg == name.DefaultRegistry || reg == "docker.io" {
		if rest, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(rest, "/") {
			repo = rest
		}
	} else {
		repo = reg + "/" + repo
	}
	return repo + refSuffix(ref)
}

// fullName is the fully qualified form containerd records
// ("docker.io/library/app:latest").
func fullName(ref name.Reference) string {
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + ref.Context().RepositoryStr() + refSuffix(ref)
}

func refSuffix(ref name.Reference) string {
	switch r := ref.(type) {
	case name.Tag:
		return ":" + r.TagStr()
	case name.Digest:
		return "@" + r.DigestStr()
	}
	return ""
}
