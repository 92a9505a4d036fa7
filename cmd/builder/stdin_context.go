package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

// contextFromStdin reads `builder build -` as docker does: standard input
// is either a tar archive of the context (plain, gzip, bzip2, xz or zstd),
// which is unpacked into a temporary directory, or a Dockerfile, built
// with an empty context. It sets the request's context directory and
// Dockerfile (a relative -f names a file of the archive) and returns what
// removes the directory.
func contextFromStdin(cfg *buildConfig, stdin io.Reader) (cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "builder-context-")
	if err != nil {
		return nil, fmt.Errorf("making a directory for the context on stdin: %w", err)
	}
	remove := func() { os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			remove()
		}
	}()
	r := &cfg.req
	r.ContextDir = dir
	br := bufio.NewReaderSize(stdin, 1<<16)
	plain, err := cache.Decompress(br, cache.ArchiveCodecs)
	if err != nil {
		return nil, fmt.Errorf("reading the context on stdin: %w", err)
	}
	defer plain.Close()
	pr := bufio.NewReaderSize(plain, 1<<16)
	head, _ := pr.Peek(512)
	if !isTar(head) {
		if r.Dockerfile != "" {
			return nil, usagef("standard input is a Dockerfile, not a tar archive of the context, so -f %s has nothing to name", r.Dockerfile)
		}
		r.Dockerfile, r.Stdin = "-", pr
		return remove, nil
	}
	if err := snapshot.Extract(pr, dir, "/"); err != nil {
		return nil, fmt.Errorf("unpacking the context on stdin: %w", err)
	}
	if r.Dockerfile != "" && !filepath.IsAbs(r.Dockerfile) {
		r.Dockerfile = filepath.Join(dir, r.Dockerfile)
	}
	return remove, nil
}

// isTar reports whether head is the start of a tar archive: a ustar or
// GNU header's magic at offset 257.
func isTar(head []byte) bool {
	return len(head) >= 263 && (bytes.Equal(head[257:263], []byte("ustar\x00")) || bytes.Equal(head[257:263], []byte("ustar ")))
}
