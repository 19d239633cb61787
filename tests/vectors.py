"""The one loader for the known-answer vector files in ``tests/vectors/``.

Each file is JSON, names its source (a published standard, the OpenSSL CLI
command that produced it, or a hostile case) and holds hex strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).with_name("vectors")


def load(name: str) -> Any:
    """The parsed contents of ``tests/vectors/<name>.json``."""
    return json.loads((VECTOR_DIR / f"{name}.json").read_text(encoding="utf-8"))


def unhex(value: str) -> bytes:
    """Bytes from a vector file's hex string (whitespace allowed)."""
    return bytes.fromhex(value)
