#!/usr/bin/env bash
# Runs every benchmark in benchmarks/ and prints its table. Pass --quick for
# the short runs CI makes; without it the full measurements behind
# docs/performance.md are taken (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
for bench in benchmarks/bench_*.py; do
    printf '\n==> %s %s\n' "$bench" "$*"
    "$py" "$bench" "$@"
done
