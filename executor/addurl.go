package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// isHTTP reports whether an ADD source is a file to download.
func isHTTP(s string) bool {
	return (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) && !isGit(s)
}

// isGit reports whether an ADD source is a git repository, as BuildKit
// tells them (dfgitutil): git's own schemes and scp-like syntax, or an
// http(s) URL whose path ends in .git, with or without a #ref.
func isGit(s string) bool {
	if strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "git://") || strings.HasPrefix(s, "ssh://") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.HasSuffix(u.Path, ".git")
}

// download is one URL of an ADD: the file name it gets, and once fetched
// where it is and its time.
type download struct {
	url, name string
	file      string    // in the step's download dir, once fetched
	modTime   time.Time // Last-Modified, else the Unix epoch
}

// downloads are an ADD's URL sources. Its key takes, per URL, the
// --checksum when one is given (nothing is fetched on a hit), else the
// server's ETag or Last-Modified (asked with HEAD), else the content
// (fetched to be keyed). Each file is mode 0600 unless --chmod, as
// BuildKit makes it, and a remote archive is not unpacked.
type downloads struct {
	dir   string // in the store's session: files fetched before or during the step
	items []*download
}

// prepareDownloads keys the URL sources of an ADD; close removes what
// was fetched.
func (b *build) prepareDownloads(ctx context.Context, kb *cache.KeyBuilder, ins *parser.Copy) (*downloads, error) {
	dir, err := b.snaps.TempDir("add-")
	if err != nil {
		return nil, err
	}
	dl := &downloads{dir: dir}
	for _, src := range ins.Sources {
		if !isHTTP(src) {
			continue
		}
		d := &download{url: src, name: urlFileName(src)}
		if err := b.keyDownload(ctx, kb, ins.Checksum, d, dir); err != nil {
			dl.close()
			return nil, err
		}
		dl.items = append(dl.items, d)
	}
	return dl, nil
}

func (dl *downloads) close() { os.RemoveAll(dl.dir) }

// copyDownloads fetches what the key did not and copies the files into
// the step's rootfs.
func (b *build) copyDownloads(ctx context.Context, a *snapshot.Active, o copyOpts, ins *parser.Copy, dl *downloads) error {
	if ins.Unpack == nil {
		o.unpack = false
	}
	if o.chmod == nil {
		o.chmod = func(m os.FileMode) os.FileMode { return m&^permBits | 0o600 }
	}
	var names []string
	for _, d := range dl.items {
		if d.file == "" {
			if err := b.fetch(ctx, d, dl.dir, ins.Checksum); err != nil {
				return err
			}
		}
		if err := os.Chtimes(d.file, d.modTime, d.modTime); err != nil {
			return err
		}
		rel, err := filepath.Rel(dl.dir, d.file)
		if err != nil {
			return err
		}
		names = append(names, rel)
	}
	return b.copyDir(ctx, a, o, ins, dl.dir, names)
}

// keyDownload adds what identifies d's content to the key, fetching it
// when the server gives no validator.
func (b *build) keyDownload(ctx context.Context, kb *cache.KeyBuilder, checksum string, d *download, dir string) error {
	kb.AddString("add.url", d.url)
	if checksum != "" {
		kb.AddString("add.checksum", checksum)
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, d.url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if etag := resp.Header.Get("ETag"); etag != "" {
				kb.AddString("add.etag", etag)
				return nil
			}
			if lm := resp.Header.Get("Last-Modified"); lm != "" {
				kb.AddString("add.last-modified", lm)
				return nil
			}
		}
	}
	// No validator (or no HEAD): the content is the key.
	if err := b.fetch(ctx, d, dir, ""); err != nil {
		return err
	}
	sum, err := fileSHA256(d.file)
	if err != nil {
		return err
	}
	kb.AddString("add.content", sum)
	return nil
}

// fetch downloads d into dir, checking it against checksum when given.
func (b *build) fetch(ctx context.Context, d *download, dir, checksum string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", d.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading %s: %s", d.url, resp.Status)
	}
	d.modTime = time.Unix(0, 0)
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		d.modTime = lm
	}
	sub, err := os.MkdirTemp(dir, "dl-")
	if err != nil {
		return err
	}
	d.file = filepath.Join(sub, d.name)
	h := sha256.New()
	max := b.snaps.MaxLayerSize()
	err = fsutil.WriteAtomic(d.file, 0o600, func(w io.Writer) error {
		n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, max+1))
		if err == nil && n > max {
			err = fmt.Errorf("larger than %d bytes (BUILDER_MAX_LAYER_SIZE)", max)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("downloading %s: %w", d.url, err)
	}
	if checksum != "" {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != checksum {
			return fmt.Errorf("%s: the download's digest is %s, not --checksum=%s", d.url, got, checksum)
		}
	}
	return nil
}

// urlFileName is the name BuildKit gives a download: the last element
// of the URL's path, or "__unnamed__".
func urlFileName(src string) string {
	u, err := url.Parse(src)
	if err == nil {
		if base := path.Base(u.Path); base != "." && base != "/" {
			return base
		}
	}
	return "__unnamed__"
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
