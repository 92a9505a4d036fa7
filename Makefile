# builder: a daemonless OCI image builder. `make help` lists the targets.
#
# Tests and the demo run as root on Debian 12 (namespaces, overlay mounts);
# `make deps` installs the Debian packages they use.

GO        ?= go
BIN       := bin/builder
PKG       := ./cmd/builder
# The demo's store: inside the work tree, so the demo never touches
# /var/lib/builder. `make clean` removes it.
DEMO_ROOT ?= $(CURDIR)/.demo-store
# Longer fuzzing with `make fuzz`; `make test` fuzzes each target briefly.
FUZZTIME  ?= 1m
TEST_FUZZTIME ?= 10s

MODULE      := github.com/builderdev/builder
# Every package's tests run under the race detector: measured on the
# 2-core CI machine (2026-11-23), `go test -race ./...` takes about 3 min
# against 1.5 min without it, executor being most of both, and the whole
# of `make test` about 5 min, far inside CI's 90. Packages listed here (full import paths) run without -race
# instead, should one become too slow for it.
NORACE_PKGS :=

# gcc and libc6-dev because the race detector needs cgo; slirp4netns is
# the outbound path of RUN's default network, iproute2 what the network
# tests build their own namespaces with, openssh-client the ssh-agent the
# RUN --mount=type=ssh test forwards, git what ADD of a repository runs,
# tmux the real terminal the display is tested in.
RUN_PKGS    := slirp4netns git
DEBIAN_PKGS := busybox-static docker-registry skopeo umoci podman runc uidmap \
	xz-utils bzip2 zstd gzip gcc libc6-dev iproute2 openssh-client tmux $(RUN_PKGS)

.DEFAULT_GOAL := help
.PHONY: help build deps lint test test-race test-norace test-fuzz fuzz bench demo clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The version and commit `builder version` prints: git's, as the build
# info has none under GOFLAGS=-buildvcs=false or outside a checkout.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

build: ## build bin/builder, a static binary
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) $(PKG)

deps: ## install the Debian packages and Go modules tests and the demo need
	hack/deps.sh $(DEBIAN_PKGS)
	$(GO) mod download

lint: ## gofmt (fails on any unformatted file) and go vet
	@out=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -exec gofmt -l {} +); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint test-race test-norace test-fuzz ## deps, lint, every test (as root), and a short run of each fuzz target

# The race detector needs cgo; the binary `build` makes stays static.
test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 60m \
		$$($(GO) list ./... | grep -vxF -e '' $(foreach p,$(NORACE_PKGS),-e $(p)))

test-norace:
	$(if $(NORACE_PKGS),$(GO) test -count=1 -timeout 60m $(NORACE_PKGS),@true)

test-fuzz:
	FUZZTIME=$(TEST_FUZZTIME) hack/fuzz.sh

fuzz: ## run each fuzz target for FUZZTIME (default 1m)
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

bench: ## run every benchmark
	$(GO) test -run='^$$' -bench=. ./...

demo: build ## build a busybox base and the example app offline into .demo-store
	hack/deps.sh busybox-static $(RUN_PKGS)
	hack/busybox-rootfs.sh examples/base/rootfs.tar
	BUILDER_ROOT=$(DEMO_ROOT) $(BIN) build --progress=plain -t busybox:demo examples/base
	BUILDER_ROOT=$(DEMO_ROOT) $(BIN) build --progress=plain -t demo-app:latest examples/app
	@echo; echo '$$ builder history demo-app:latest'
	@BUILDER_ROOT=$(DEMO_ROOT) $(BIN) history demo-app:latest
	@echo; echo '$$ builder images'
	@BUILDER_ROOT=$(DEMO_ROOT) $(BIN) images

clean: ## remove bin/, the demo store and generated files
	rm -rf bin examples/base/rootfs.tar $(DEMO_ROOT)
