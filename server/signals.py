"""Abuse signals as pure functions of what a request and its history show.

Each signal is about a subject, named by a prefix: ``s:`` a session,
``l:`` a license, ``t:`` an embed token, ``n:`` a client network, ``q:``
and ``m:`` the quota and minting buckets. Sessions and tokens appear only
as a 16-hex-digit SM3 digest (:func:`subject_digest`). What the signals
mean and weigh is in ``server/abuse.py`` and docs/abuse.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import native
from .limits_store import Bucket

HEADLESS_MARKERS = ("headless", "phantomjs", "selenium")
MAX_WALK_PARAMS = 4
MAX_PARAM_VALUE = 64

_NUMBER = re.compile(r"[+-]?\d{1,15}(\.\d{1,9})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?")
_TRAILING = re.compile(r"[A-Za-z_-]{1,8}(\d{1,12})")
_PARTS = re.compile(r"[,/;|\s]")


@dataclass(frozen=True)
class Signal:
    """One observation about one subject of one license."""

    name: str
    subject: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def subject_digest(value: bytes | str) -> str:
    """A short, stable name for a session or token in logs and alerts."""
    data = value.encode() if isinstance(value, str) else value
    return native.sm3_hash(data).hex()[:16]


def ordinal(text: str) -> float | None:
    """The position a query value names on a line: number, date or id."""
    text = text.strip()[:MAX_PARAM_VALUE]
    if _NUMBER.fullmatch(text):
        return float(text)
    if _DATE.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    trailing = _TRAILING.fullmatch(text)
    return float(trailing.group(1)) if trailing else None


def walk_steps(items: Iterable[tuple[str, str]]) -> list[tuple[str, float]]:
    """The orderable parts of a query: ``(param.index, position)`` pairs."""
    steps: list[tuple[str, float]] = []
    for name, value in items:
        for index, part in enumerate(_PARTS.split(value[:MAX_PARAM_VALUE])[:4]):
            position = ordinal(part)
            if position is not None:
                steps.append((f"{name[:32]}.{index}", position))
            if len(steps) == MAX_WALK_PARAMS:
                return steps
    return steps


def timing_cv(stamps: Sequence[int], window: int, max_gap_ms: float) -> float | None:
    """The coefficient of variation of the last ``window`` gaps between
    requests, or None when there are fewer or they are slow or simultaneous.
    """
    if len(stamps) < window + 1:
        return None
    times = sorted(stamps)[-(window + 1):]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    mean = sum(gaps) / window
    if mean <= 0 or mean > max_gap_ms:
        return None
    return math.sqrt(sum((g - mean) ** 2 for g in gaps) / window) / mean


def automation_markers(env: Mapping[str, Any], http_ua: str) -> list[str]:
    """What in a handshake's environment report says "automated browser"."""
    markers = []
    ua = str(env.get("ua", ""))
    if env.get("webdriver") is True:
        markers.append("webdriver")
    if any(marker in ua.lower() for marker in HEADLESS_MARKERS):
        markers.append("headless_ua")
    if ua[:512] != http_ua[:512]:
        markers.append("ua_mismatch")
    return markers


def bucket_subject(bucket: Bucket) -> str:
    """The subject a refusing bucket stands for: ``s:``, ``n:``, ``l:``..."""
    key = bucket.key.split(":")[0] if bucket.scope == "quota" else bucket.key
    return f"{bucket.scope[0]}:{key}"


__all__ = ["Signal", "automation_markers", "bucket_subject", "ordinal",
           "subject_digest", "timing_cv", "walk_steps"]
