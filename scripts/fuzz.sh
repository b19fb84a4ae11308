#!/usr/bin/env bash
# Runs fuzz targets, each for FUZZTIME: scripts/fuzz.sh FuzzName ./pkg [FuzzName ./pkg ...].
# Go's fuzzer (1.2x) sometimes ends a target that found nothing with "context deadline
# exceeded" when -fuzztime runs out while a worker is busy (golang/go#48127 and its
# kin). Such a run is tried once more; a run that wrote a failing input fails at once.
set -uo pipefail
go=${GO:-go}
fuzztime=${FUZZTIME:-20s}
minimize=${FUZZMINIMIZE:-2s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
while [ $# -ge 2 ]; do
  name=$1 pkg=$2
  shift 2
  for try in 1 2; do
    echo "$go test -run '^\$' -fuzz '^$name\$' -fuzztime $fuzztime -fuzzminimizetime $minimize $pkg"
    if "$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg" 2>&1 | tee "$out"; then
      break
    fi
    if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
      echo "fuzz: $name ended on the fuzzer's own deadline without a failing input; once more"
      continue
    fi
    exit 1
  done
done
