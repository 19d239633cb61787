#!/usr/bin/env bash
# Sets up, then starts the provider server and the sample host app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/xinfeng demo "$@"
