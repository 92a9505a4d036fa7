package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// printError writes a failed command's error: one line, which names its
// place when it has one ("Dockerfile:12: COPY failed: …") and otherwise
// starts with "builder: ". A failed RUN's last lines of output come first,
// so that the cause is next to the error, and hints come last.
func printError(w io.Writer, err error) {
	var se *executor.StepError
	if errors.As(err, &se) && len(se.Output) > 0 {
		fmt.Fprintf(w, "------\n > %s output (last %d lines):\n", se.Instruction, len(se.Output))
		for _, line := range se.Output {
			fmt.Fprintln(w, line)
		}
		fmt.Fprintln(w, "------")
	}
	fmt.Fprintln(w, errorLine(err))
	for _, h := range hints(err) {
		fmt.Fprintln(w, "builder: hint: "+h)
	}
}

func errorLine(err error) string {
	if errors.Is(err, context.Canceled) {
		return "builder: canceled"
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	var se *executor.StepError
	var pe *parser.Error
	if errors.As(err, &se) || errors.As(err, &pe) {
		return msg // it names its place already
	}
	return "builder: " + msg
}

// hints are the extra lines that tell what to do about an error.
func hints(err error) []string {
	var h []string
	if (errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EPERM)) && os.Geteuid() != 0 {
		h = append(h, "builds mount overlays and create namespaces, which needs root: run builder as root")
	}
	if errors.Is(err, snapshot.ErrTooDeep) {
		h = append(h, "the image has more layers than one overlay mount can stack; combine RUN steps")
	}
	var se *executor.StepError
	if errors.Is(err, cache.ErrNotFound) && !errors.As(err, &se) {
		h = append(h, "'builder images' lists the images in the store")
	}
	return h
}

// storeHints are the hints that name the store: the error says which
// file, the hint which store and what to do.
func storeHints(env *environment, err error) []string {
	root, rerr := env.storeRoot()
	if rerr != nil {
		return nil
	}
	switch {
	case errors.Is(err, syscall.EROFS):
		return []string{fmt.Sprintf("the store %s is on a read-only file system: only a build that is cached whole, and commands that read, run there; use a writable store (--root or BUILDER_ROOT)", root)}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return []string{fmt.Sprintf("no space left for the store %s: 'builder prune' removes unused build cache ('builder du' shows what it holds), or use a store on another disk (--root or BUILDER_ROOT)", root)}
	}
	return nil
}
