package executor

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// gitSource is an ADD source naming a git repository, split as BuildKit
// splits it: URL#REF:SUBDIR.
type gitSource struct {
	url, ref, subdir string
}

func parseGitSource(src string) (gitSource, error) {
	u, frag, _ := strings.Cut(src, "#")
	ref, sub, _ := strings.Cut(frag, ":")
	g := gitSource{url: u, ref: ref, subdir: strings.TrimPrefix(path.Clean("/"+sub), "/")}
	if strings.HasPrefix(g.subdir, "..") {
		return g, fmt.Errorf("%s: the subdirectory leaves the repository", src)
	}
	return g, nil
}

// stepAddGit runs an ADD of a git repository: the commit REF names is the
// key (asked with git ls-remote, so a hit fetches nothing), the checkout
// at that commit is copied like a directory of the context, without its
// .git unless --keep-git-dir, files timed at the commit's time so the
// layer is the same whenever it is made.
func (b *build) stepAddGit(ctx context.Context, sc *stepCtx, st *imageState, ins *parser.Copy, o copyOpts, kb *cache.KeyBuilder, createdBy string) error {
	git, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("ADD of a git repository needs git: install it (Debian: apt-get install git)")
	}
	src, err := parseGitSource(ins.Sources[0])
	if err != nil {
		return err
	}
	o.unpack = false
	commit, err := lsRemote(ctx, git, src)
	if err != nil {
		return err
	}
	if ins.Checksum != "" && !strings.HasPrefix(commit, ins.Checksum) {
		return fmt.Errorf("%s#%s is commit %s, not --checksum=%s", redactURL(src.url), src.ref, commit, ins.Checksum)
	}
	kb.AddString("add.git", redactURL(src.url))
	kb.AddString("add.git.commit", commit)
	kb.AddString("add.git.subdir", src.subdir)
	return b.fsStep(ctx, sc, st, kb, createdBy, func(ctx context.Context, a *snapshot.Active) error {
		dir, err := b.snaps.TempDir("git-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		repo := filepath.Join(dir, "repo")
		if err := checkout(ctx, git, src.url, commit, repo, ins.KeepGitDir); err != nil {
			return err
		}
		rel := path.Join("repo", src.subdir)
		if _, err := os.Lstat(filepath.Join(dir, rel)); err != nil {
			return fmt.Errorf("%s: no %s at commit %s", src.url, src.subdir, commit)
		}
		return b.copyDir(ctx, a, o, ins, dir, []string{rel})
	})
}

// runGit runs git with no terminal prompt, returning its stdout.
func runGit(ctx context.Context, git, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		return nil, fmt.Errorf("git %s: %v: %s", args[0], err, redactURL(msg))
	}
	return out, nil
}

// lsRemote resolves the source's ref to a commit: a full commit id as
// it is; else HEAD, a branch, a tag (peeled) or a full ref name.
func lsRemote(ctx context.Context, git string, src gitSource) (string, error) {
	if len(src.ref) == 40 && isHex(src.ref) {
		return src.ref, nil
	}
	ref := src.ref
	if ref == "" {
		ref = "HEAD"
	}
	out, err := runGit(ctx, git, "", "ls-remote", "--", src.url)
	if err != nil {
		return "", fmt.Errorf("listing %s: %w", redactURL(src.url), err)
	}
	refs := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if sha, name, ok := strings.Cut(line, "\t"); ok {
			refs[name] = sha
		}
	}
	for _, name := range []string{ref, "refs/heads/" + ref, "refs/tags/" + ref + "^{}", "refs/tags/" + ref} {
		if sha, ok := refs[name]; ok {
			return sha, nil
		}
	}
	return "", fmt.Errorf("%s has no branch or tag %s", redactURL(src.url), ref)
}

// checkout clones url into dir at commit, drops .git unless keep, and
// times every file at the commit's time.
func checkout(ctx context.Context, git, url, commit, dir string, keep bool) error {
	if _, err := runGit(ctx, git, "", "clone", "-q", "--no-checkout", "--", url, dir); err != nil {
		return fmt.Errorf("cloning %s: %w", redactURL(url), err)
	}
	if _, err := runGit(ctx, git, dir, "-c", "advice.detachedHead=false", "checkout", "-q", commit); err != nil {
		return fmt.Errorf("checking out %s: %w", commit, err)
	}
	out, err := runGit(ctx, git, dir, "log", "-1", "--format=%ct", commit)
	if err != nil {
		return err
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return fmt.Errorf("reading the commit time: %w", err)
	}
	if !keep {
		if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
			return err
		}
	}
	when := time.Unix(secs, 0)
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, when, when)
	})
}

// redactURL hides a password in a URL that errors and keys show.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
