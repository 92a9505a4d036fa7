#!/bin/sh
# fuzz.sh: runs every fuzz target of the module, each for $FUZZTIME
# (default 10s), one after another. Targets are found with `go test -list`,
# so a new Fuzz function is included without editing anything.
#
# FUZZMINIMIZETIME (default 2s) bounds how long a worker minimizes each
# new input. Go's default is 60s, and the byte-by-byte minimizer needs
# O(n^2) executions for an input of n bytes: on a 2 KiB layer tar a
# worker minimizes for the whole minute, its executions are counted only
# when it is done, and a 10s run showed "0/sec" and fuzzed nothing new.
#
# A run that fails with a bare "context deadline exceeded" and writes no
# failing input is Go's own coordinator racing its -fuzztime deadline
# (go.dev/issue/75804, fixed in Go 1.27; go.mod is on 1.26). Such a run
# counts as passed only if replaying the target's corpus is clean; any
# other failure, or a written input, fails the script.
set -eu
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
minimizetime=${FUZZMINIMIZETIME:-2s}
go=${GO:-go}
found=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for pkg in $($go list ./...); do
	targets=$($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		found=$((found + 1))
		echo "hack/fuzz.sh: $pkg $target ($fuzztime)"
		corpus="$($go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | wc -l)
		if $go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimizetime" "$pkg" >"$log" 2>&1; then
			cat "$log"
			continue
		fi
		cat "$log"
		after=$(ls "$corpus" 2>/dev/null | wc -l)
		if [ "$after" = "$before" ] && grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written' "$log"; then
			echo "hack/fuzz.sh: $target hit go.dev/issue/75804 (no input written); replaying its corpus"
			$go test -run="^${target}\$" "$pkg"
			continue
		fi
		exit 1
	done
done
echo "hack/fuzz.sh: $found targets fuzzed"
