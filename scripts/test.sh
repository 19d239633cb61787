#!/usr/bin/env bash
# Sets up, then runs every check: lint, unit and integration tests, the
# Playwright e2e suite in Debian's Chromium, and the benchmarks in quick mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '\n==> ruff\n'
.venv/bin/ruff check .
printf '\n==> pytest (unit, integration, e2e)\n'
.venv/bin/python -m pytest -q "$@"
