#!/usr/bin/env bash
# make bench-series / bench-debezium-series: the same benchmark RUNS times in a row,
# then the distribution over the runs (median, min, max, count) as markdown tables.
# A single run on a shared two-core machine proves little; quote the series.
#   RUNS=10 scripts/bench-series.sh pipeline [bench flags]
#   RUNS=5  scripts/bench-series.sh debezium [bench flags]
# Each run's table and JSON are kept (bench-results/); the summary (`bench
# summarize`, built by scripts/bench.sh) goes to stdout and to
# bench-results/series-<mode>-<time>.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mode="${1:?usage: scripts/bench-series.sh pipeline|debezium [flags]}"
shift
RUNS="${RUNS:-10}"
files=()
for ((i = 1; i <= RUNS; i++)); do
  echo "=== run $i of $RUNS ===" >&2
  out="$(bash scripts/bench.sh "$mode" "$@" | tee /dev/stderr)"
  file="$(sed -n 's/^results: //p' <<<"$out" | tail -1)"
  [[ -n $file ]] || { echo "run $i wrote no results" >&2; exit 1; }
  files+=("$file")
done
summary="bench-results/series-$mode-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "$RUNS runs of: make bench ($mode) $*"
  echo
  .local/bin/bench summarize "${files[@]}"
} | tee "$summary"
