#!/bin/sh
# fuzz.sh: runs every fuzz target of the module, each for $FUZZTIME
# (default 10s), one after another. Targets are found with `go test -list`,
# so a new Fuzz function is included without editing anything.
set -eu
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
go=${GO:-go}
found=0

for pkg in $($go list ./...); do
	targets=$($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		found=$((found + 1))
		echo "hack/fuzz.sh: $pkg $target ($fuzztime)"
		$go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
	done
done
echo "hack/fuzz.sh: $found targets fuzzed"
