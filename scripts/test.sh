#!/usr/bin/env bash
# Sets up, then runs every check: lint, types, unit and integration tests,
# the benchmarks in quick mode, and the Playwright e2e suite in Debian's
# Chromium with real Pyodide (pytest's summary is the last line).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '\n==> ruff\n'
.venv/bin/ruff check .
printf '\n==> mypy --strict (sdk, license, server, component)\n'
bash scripts/typecheck.sh
printf '\n==> benchmarks (quick mode)\n'
bash scripts/bench.sh --quick
printf '\n==> pytest (unit, integration, e2e)\n'
.venv/bin/python -m pytest -q "$@"
