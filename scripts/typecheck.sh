#!/usr/bin/env bash
# mypy --strict over every package of xinfeng. The folders install
# under the xinfeng namespace through setuptools' package-dir, which mypy
# cannot follow, so it reads them through a tree of symlinks that mirrors
# the installed layout.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=.cache/typecheck
mkdir -p "$tree/xinfeng"
for part in sdk license server component; do ln -sfn "../../../$part" "$tree/xinfeng/$part"; done
cd "$tree"
exec ../../.venv/bin/mypy --config-file ../../pyproject.toml \
    -p xinfeng.sdk -p xinfeng.license -p xinfeng.server -p xinfeng.component
