"""Tables: a header, a page of rows that fits the box, and a pager line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .paint import Box, Painter, Theme, fmt

ROW_HEIGHT = 22
PAGER_HEIGHT = 24


@dataclass(frozen=True)
class Column:
    """A column: its label, where it starts (share of the width) and alignment."""

    label: str
    at: float
    align: str = "left"


def even_columns(labels: Sequence[str], numeric_from: int = 1) -> list[Column]:
    """Columns spread evenly; those from ``numeric_from`` on are right-aligned."""
    n = max(1, len(labels))
    return [
        Column(label, k / n, "right" if k >= numeric_from else "left")
        for k, label in enumerate(labels)
    ]


def rows_that_fit(box: Box) -> int:
    """How many body rows the box holds under the header, above the pager."""
    return max(1, int((box.h - ROW_HEIGHT - PAGER_HEIGHT - 8) // ROW_HEIGHT))


def clamp_first(first: int, total: int, page_rows: int) -> int:
    return min(max(0, total - page_rows), max(0, first))


def _x(box: Box, column: Column, next_at: float) -> float:
    inner = box.w - 24
    if column.align == "right":
        return box.x + 12 + inner * next_at - 8
    return box.x + 12 + inner * column.at


def draw_table(
    painter: Painter,
    box: Box,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    first: int,
    theme: Theme,
    marker: Any = None,
) -> int:
    """Draw the rows from ``first`` that fit; return how many fit on a page.

    ``marker(painter, row, x, y)`` may draw something left of each row.
    """
    painter.rect(box, theme.panel)
    page_rows = rows_that_fit(box)
    first = clamp_first(first, len(rows), page_rows)
    ends = [c.at for c in columns[1:]] + [1.0]
    y = box.y + ROW_HEIGHT / 2 + 4
    for column, end in zip(columns, ends, strict=True):
        painter.text(
            column.label, _x(box, column, end), y, theme.muted, 12, column.align, "bold"
        )
    painter.line(
        box.x + 12,
        y + ROW_HEIGHT / 2,
        box.x + box.w - 12,
        y + ROW_HEIGHT / 2,
        theme.grid,
    )
    shown = rows[first : first + page_rows]
    for row in shown:
        y += ROW_HEIGHT
        if marker is not None:
            marker(painter, row, box.x + 7, y)
        for value, column, end in zip(row, columns, ends, strict=False):
            painter.text(
                fmt(value), _x(box, column, end), y, theme.text, 12, column.align
            )
    pager = f"{first + 1}–{first + len(shown)} of {len(rows)} · scroll for more"
    painter.text(pager, box.x + 12, box.y + box.h - PAGER_HEIGHT / 2, theme.muted, 11)
    return page_rows


def row_at(box: Box, y: float, first: int, total: int) -> int | None:
    """The index of the row drawn at height ``y``, if any."""
    page_rows = rows_that_fit(box)
    first = clamp_first(first, total, page_rows)
    k = int((y - box.y - ROW_HEIGHT - 4) // ROW_HEIGHT)
    if 0 <= k < page_rows and first + k < total and box.contains(box.x + 1, y):
        return first + k
    return None
