package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// heredocPipes is where a heredoc script with a shebang line is put for
// its interpreter to run, as BuildKit puts it.
const heredocPipes = "/dev/pipes"

// runArgs is a RUN's command before SHELL is prepended, with heredocs
// given to the shell as BuildKit gives them (dispatchRun): a RUN that is
// one heredoc runs its content as the script, or, when the content starts
// with "#!", as a file the shebang's interpreter runs; any other command
// gets its heredocs back after its first line, for the shell to feed to
// the commands that read them. The file is the one extra mount returned.
func runArgs(ins *parser.Run) ([]string, []container.Mount) {
	if len(ins.Heredocs) == 0 {
		return ins.Args, nil
	}
	if ins.HeredocOnly {
		h := ins.Heredocs[0]
		if !strings.HasPrefix(h.Data, "#!") {
			return []string{h.Data}, nil
		}
		m := container.Mount{Target: heredocPipes, Tmpfs: true, ReadOnly: true, NoSuid: true,
			Files: []container.File{{Name: h.Name, Data: []byte(h.Data), Mode: 0o755}}}
		return []string{heredocPipes + "/" + h.Name}, []container.Mount{m}
	}
	var b strings.Builder
	b.WriteString(ins.Args[0])
	for _, h := range ins.Heredocs {
		b.WriteByte('\n')
		b.WriteString(h.Data)
		b.WriteString(h.Name)
	}
	return []string{b.String()}, nil
}

// copyInline runs a COPY whose sources are heredocs: each becomes a file
// named after its delimiter (mode 0644 unless --chmod, as BuildKit makes
// them), written in the step's own directory and copied from there as a
// context file would be.
func (b *build) copyInline(ctx context.Context, a *snapshot.Active, o copyOpts, ins *parser.Copy) error {
	dir, err := os.MkdirTemp(filepath.Dir(a.Upper()), "heredoc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var names []string
	for _, h := range ins.Inline {
		p := filepath.Join(dir, filepath.Base(h.Name))
		if err := os.WriteFile(p, []byte(h.Data), 0o644); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o644); err != nil { // the umask
			return err
		}
		names = append(names, filepath.Base(h.Name))
	}
	return b.copyDir(ctx, a, o, ins, dir, names)
}

// copyDir copies the files names of dir, which the builder wrote (a
// heredoc, a download), into the step's rootfs as context files are.
func (b *build) copyDir(ctx context.Context, a *snapshot.Active, o copyOpts, ins *parser.Copy, dir string, names []string) error {
	tree, err := openTree(dir, true)
	if err != nil {
		return err
	}
	defer tree.Close()
	srcs, err := selectSources(tree, names, nil)
	if err != nil {
		return err
	}
	if err := checkMultiDest(&o, srcs, ins); err != nil {
		return err
	}
	var c *copier
	err = withRootfs(a.Mount, filepath.Dir(a.Upper()), func(root string) (err error) {
		c, err = copyInto(ctx, root, a.Upper(), o, srcs)
		return err
	})
	if err != nil {
		return err
	}
	return c.finishDeferred(ctx, 0)
}
