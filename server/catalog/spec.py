"""What every catalogue product declares, and the helpers their builders share.

A product module derives its data once from the pinned source files (the
slow part, cached on disk by :func:`xinfeng.server.datasets.cached`) and
then answers each request from that derivation with a small payload,
narrowed by the request's query parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xinfeng.sdk.errors import XinfengError

from ..datasets import Wheels

Payload = dict[str, Any]
REGION = "440000"  # GB/T 2260: Guangdong, the provider's region
CATEGORY = "01"  # meteorological data
Derived = Any
Query = Mapping[str, str]


class QueryError(XinfengError):
    """A query parameter of a data request is malformed or out of range."""

    code = "bad_query"
    status = 400


@dataclass(frozen=True)
class ProductSpec:
    """One product: how it is filed, where its data comes from, how it is built.

    ``derive`` reads the source files (through ``Wheels``) and returns plain
    msgpack-able data; ``build`` turns that and a request's query into the
    payload. ``files`` names the source files inside the wheels, for
    docs/data.md and the review record. Identifiers are numbered in product
    id order, as the registry allocates them on a fresh data directory.
    """

    product_id: str
    name: str
    grade: int
    source: str
    files: tuple[str, ...]
    derive: Callable[[Wheels], Derived]
    build: Callable[[Derived, Query], Payload]

    def identifier(self, serial: int) -> str:
        """The data identity identifier: Guangdong (440000), meteorology (01)."""
        from xinfeng.license.products import make_identifier

        return make_identifier(REGION, CATEGORY, serial)


def int_param(query: Query, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``[low, high]``.

    Raises:
        QueryError: present but not a decimal integer in range.
    """
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise QueryError(f"{name} must be a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise QueryError(f"{name} must be between {low} and {high}")
    return value


def choice_param(query: Query, name: str, default: str, allowed: set[str]) -> str:
    """A query parameter that must be one of ``allowed``.

    Raises:
        QueryError: present and not one of the allowed values.
    """
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise QueryError(f"{name} is not one of the offered values")
    return raw


def first_page(rows: list[Any], query: Query, size: int) -> dict[str, int]:
    """Paging fields of a table payload: ``page`` (1-based) shown first.

    Every row travels in the payload, so the component pages without
    another request; the ``page`` query parameter picks the first page.
    """
    pages = max(1, -(-len(rows) // size))
    return {
        "page": int_param(query, "page", 1, 1, pages),
        "pages": pages,
        "page_rows": size,
    }
