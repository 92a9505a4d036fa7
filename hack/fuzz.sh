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
set -eu
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
minimizetime=${FUZZMINIMIZETIME:-2s}
go=${GO:-go}
found=0

for pkg in $($go list ./...); do
	targets=$($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		found=$((found + 1))
		echo "hack/fuzz.sh: $pkg $target ($fuzztime)"
		$go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimizetime" "$pkg"
	done
done
echo "hack/fuzz.sh: $found targets fuzzed"
