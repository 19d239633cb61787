"""What a component remembers between frames, and the layout helpers of views."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .paint import Box

WIDE_LAYOUT_MIN = 720


@dataclass
class View:
    """One component's view state: scrolling, the period shown, pickable areas.

    The runtime keeps one per mounted component and passes it in every
    frame's options; drawing records ``page_rows``, ``rows`` and
    ``targets`` so that keys, wheel steps and clicks act on what is shown.
    """

    first: int = 0
    page_rows: int = 10
    rows: int = 0
    period: int | None = None
    periods: list[int] = field(default_factory=list)
    targets: list[tuple[Box, str]] = field(default_factory=list)

    def scroll(self, rows: int) -> bool:
        """Move the table by ``rows`` (negative is up); whether it moved."""
        last = max(0, self.rows - self.page_rows)
        first = min(last, max(0, self.first + rows))
        moved, self.first = first != self.first, first
        return moved

    def shift_period(self, steps: int) -> bool:
        """Show the next (or previous) period, when the product has periods."""
        if not self.periods:
            return False
        current = self.period if self.period in self.periods else self.periods[0]
        index = self.periods.index(current) + steps
        index = min(len(self.periods) - 1, max(0, index))
        changed = self.periods[index] != current
        self.period = self.periods[index]
        self.first = 0 if changed else self.first
        return changed

    def target(self, box: Box, ref: str) -> None:
        self.targets.append((box, ref))

    def pick(self, x: float, y: float) -> str | None:
        """The reference of the last-drawn target under (x, y), if any."""
        for box, ref in reversed(self.targets):
            if box.contains(x, y):
                return ref
        return None


def split(body: Box, map_share: float = 0.58) -> tuple[Box, Box]:
    """A map box and a table box: side by side when wide, stacked otherwise."""
    if body.w >= WIDE_LAYOUT_MIN:
        map_w = math.floor(body.w * map_share)
        return (
            Box(body.x, body.y, map_w, body.h),
            Box(body.x + map_w, body.y, body.w - map_w, body.h),
        )
    map_h = math.floor(body.h * 0.55)
    return (
        Box(body.x, body.y, body.w, map_h),
        Box(body.x, body.y + map_h, body.w, body.h - map_h),
    )


def number(raw: Any, default: float = 0.0) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return default
