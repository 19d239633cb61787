"""Charts: daily time series for one year, a heat map, colour-scale bars."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .paint import RGB, Box, Painter, Stops, Theme, ramp, rgb_hex

MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
# Diverging temperature tints (°C), cold to warm, from ColorBrewer's RdYlBu.
TEMPERATURE_STOPS: Stops = (
    (-5.0, (49, 54, 149)),
    (0.0, (69, 117, 180)),
    (5.0, (116, 173, 209)),
    (10.0, (224, 243, 248)),
    (15.0, (254, 224, 144)),
    (20.0, (253, 174, 97)),
    (25.0, (244, 109, 67)),
    (30.0, (215, 48, 39)),
)
SERIES_COLOURS = ("#d0452f", "#2f6fd0", "#2a9d8f")


@dataclass(frozen=True)
class Series:
    """One named series of a year: values in the payload's units (or None)."""

    label: str
    values: list[float | None]


def year_slice(dates: Sequence[str], year: int) -> tuple[int, int]:
    """The index range of ``dates`` (ISO strings) that fall in ``year``."""
    prefix = f"{year:04d}-"
    inside = [k for k, d in enumerate(dates) if d.startswith(prefix)]
    return (inside[0], inside[-1] + 1) if inside else (0, 0)


def day_of_year(date: str) -> int:
    return datetime.date.fromisoformat(date).timetuple().tm_yday


def nice_range(low: float, high: float) -> tuple[float, float, float]:
    """Axis limits and a tick step around [low, high]."""
    span = max(high - low, 1e-9)
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    tick = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return math.floor(low / tick) * tick, math.ceil(high / tick) * tick, tick


@dataclass(frozen=True)
class Axes:
    """A plot area for one year on x and ``[low, high]`` on y."""

    box: Box
    days: int
    low: float
    high: float

    def x(self, day: float) -> float:
        return self.box.x + self.box.w * (day - 0.5) / self.days

    def y(self, value: float) -> float:
        return self.box.y + self.box.h * (self.high - value) / (self.high - self.low)


def axes(
    painter: Painter, box: Box, year: int, low: float, high: float, theme: Theme
) -> Axes:
    """Draw the frame, month ticks and value ticks; return the axes."""
    low, high, tick = nice_range(low, high)
    days = 366 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 365
    plot = Axes(box, days, low, high)
    value = low
    while value <= high + tick / 2:
        y = plot.y(value)
        painter.line(box.x, y, box.x + box.w, y, theme.grid)
        painter.text(f"{value:g}", box.x - 6, y, theme.muted, 10, "right")
        value += tick
    for month in range(12):
        start = day_of_year(f"{year:04d}-{month + 1:02d}-01")
        x = plot.x(start)
        painter.line(x, box.y + box.h, x, box.y + box.h + 4, theme.muted)
        painter.text(MONTHS[month], x + 4, box.y + box.h + 12, theme.muted, 10)
    return plot


def line_path(plot: Axes, dates: Sequence[str], values: Sequence[float | None]) -> str:
    parts, pen = [], "M"
    for date, value in zip(dates, values, strict=True):
        if value is None:
            pen = "M"
            continue
        parts.append(f"{pen}{plot.x(day_of_year(date)):.1f} {plot.y(value):.1f}")
        pen = "L"
    return "".join(parts)


def band_path(
    plot: Axes,
    dates: Sequence[str],
    upper: Sequence[float | None],
    lower: Sequence[float | None],
) -> str:
    """A closed shape between two series (days where both exist)."""
    pairs = [
        (day_of_year(d), u, lo)
        for d, u, lo in zip(dates, upper, lower, strict=True)
        if u is not None and lo is not None
    ]
    if not pairs:
        return ""
    top = [f"{plot.x(d):.1f} {plot.y(u):.1f}" for d, u, _ in pairs]
    bottom = [f"{plot.x(d):.1f} {plot.y(lo):.1f}" for d, _, lo in reversed(pairs)]
    return "M" + "L".join(top + bottom) + "Z"


def bars_path(plot: Axes, dates: Sequence[str], values: Sequence[float | None]) -> str:
    width = max(1.0, plot.box.w / plot.days * 0.8)
    base = plot.y(max(plot.low, 0.0))
    parts = []
    for date, value in zip(dates, values, strict=True):
        if value:
            x = plot.x(day_of_year(date)) - width / 2
            y = plot.y(value)
            parts.append(f"M{x:.1f} {base:.1f}V{y:.1f}h{width:.1f}V{base:.1f}Z")
    return "".join(parts)


def heatmap(
    painter: Painter,
    box: Box,
    rows: Sequence[Sequence[float | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    theme: Theme,
    stops: Stops = TEMPERATURE_STOPS,
) -> None:
    """Cells coloured by value, labelled with the value where they are wide enough."""
    left, top = 34, 16
    cw = (box.w - left) / max(1, len(col_labels))
    ch = (box.h - top) / max(1, len(row_labels))
    for c, label in enumerate(col_labels):
        if c % (1 if cw >= 22 else 3) == 0:
            painter.text(
                label,
                box.x + left + (c + 0.5) * cw,
                box.y + 7,
                theme.muted,
                10,
                "center",
            )
    for r, label in enumerate(row_labels):
        y = box.y + top + r * ch
        painter.text(label, box.x + left - 6, y + ch / 2, theme.muted, 10, "right")
        for c, value in enumerate(rows[r]):
            _cell(painter, Box(box.x + left + c * cw, y, cw, ch), value, stops, theme)


def _cell(
    painter: Painter, cell: Box, value: float | None, stops: Stops, theme: Theme
) -> None:
    rgb: RGB | None = ramp(value, stops)
    painter.rect(
        Box(cell.x, cell.y, cell.w - 1, cell.h - 1),
        rgb_hex(rgb) if rgb else theme.panel,
    )
    if value is not None and cell.w >= 21 and cell.h >= 12:
        dark = rgb is not None and sum(rgb) < 330
        painter.text(
            f"{value:.1f}",
            cell.x + cell.w / 2,
            cell.y + cell.h / 2,
            "#ffffff" if dark else "#1b1f24",
            9 if cell.w >= 26 else 8,
            "center",
        )


def scale_bar(
    painter: Painter, box: Box, stops: Sequence[Sequence[float]], theme: Theme
) -> None:
    """One classed colour scale: a box per stop, its value under the first of each."""
    n = max(1, len(stops))
    width = box.w / n
    every = max(1, math.ceil(40 / width))
    for k, (value, r, g, b) in enumerate(stops):
        x = box.x + k * width
        painter.rect(
            Box(x, box.y, width + 0.5, box.h), rgb_hex((int(r), int(g), int(b)))
        )
        if k % every == 0:
            painter.text(f"{value:g}", x, box.y + box.h + 9, theme.muted, 10)
    painter.frame(box, theme.grid)
