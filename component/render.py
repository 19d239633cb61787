"""Drawing the station product into a 2D canvas context.

Everything here talks to the context through :class:`Painter`, which also
keeps the text of the frame it drew. In the browser the context is an
OffscreenCanvas's ``CanvasRenderingContext2D`` reached through Pyodide's
``js`` proxy; any object with the same methods works, so the layout can be
checked on CPython with a recording stand-in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FONT_FAMILY = "system-ui, 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif"
ROW_HEIGHT = 22
HEADER_HEIGHT = 40
FOOTER_HEIGHT = 26
WIDE_LAYOUT_MIN = 720

# Altitude colour stops (metres), low to high, from ColorBrewer's Spectral.
ALTITUDE_STOPS = (
    (0.0, (43, 131, 186)),
    (100.0, (171, 221, 164)),
    (300.0, (255, 255, 191)),
    (600.0, (253, 174, 97)),
    (1200.0, (215, 25, 28)),
)
NO_ALTITUDE = "#9a9a9a"


@dataclass(frozen=True)
class Theme:
    """Colours of one look."""

    background: str
    panel: str
    text: str
    muted: str
    grid: str
    error: str
    watermark: str


THEMES = {
    "light": Theme(
        "#ffffff",
        "#f4f6f8",
        "#1b1f24",
        "#5c6670",
        "#d5dbe1",
        "#a40000",
        "rgba(30, 40, 60, 0.10)",
    ),
    "dark": Theme(
        "#15191e",
        "#1f252c",
        "#e8ecf0",
        "#9aa5b1",
        "#39424c",
        "#ff8a80",
        "rgba(255, 255, 255, 0.09)",
    ),
}


@dataclass(frozen=True)
class Station:
    """One row of the product, as the component shows it."""

    station_id: str
    county: str
    lon: float
    lat: float
    alt: float | None


@dataclass(frozen=True)
class Box:
    """A rectangle in CSS pixels."""

    x: float
    y: float
    w: float
    h: float


class Painter:
    """A thin layer over a 2D context that records every string it draws."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.texts: list[str] = []

    def rect(self, box: Box, colour: str) -> None:
        self.ctx.fillStyle = colour
        self.ctx.fillRect(box.x, box.y, box.w, box.h)

    def line(self, x0: float, y0: float, x1: float, y1: float, colour: str) -> None:
        self.ctx.strokeStyle = colour
        self.ctx.lineWidth = 1
        self.ctx.beginPath()
        self.ctx.moveTo(x0, y0)
        self.ctx.lineTo(x1, y1)
        self.ctx.stroke()

    def dot(self, x: float, y: float, radius: float, colour: str) -> None:
        self.ctx.fillStyle = colour
        self.ctx.beginPath()
        self.ctx.arc(x, y, radius, 0, 2 * math.pi)
        self.ctx.fill()

    def text(
        self,
        value: str,
        x: float,
        y: float,
        colour: str,
        size: int = 13,
        align: str = "left",
        weight: str = "normal",
    ) -> None:
        self.ctx.fillStyle = colour
        self.ctx.font = f"{weight} {size}px {FONT_FAMILY}"
        self.ctx.textAlign = align
        self.ctx.textBaseline = "middle"
        self.ctx.fillText(value, x, y)
        self.texts.append(value)


def altitude_colour(alt: float | None) -> str:
    """The fill colour for a station at ``alt`` metres."""
    if alt is None or math.isnan(alt):
        return NO_ALTITUDE
    low_alt, low_rgb = ALTITUDE_STOPS[0]
    if alt <= low_alt:
        return _rgb(low_rgb)
    for high_alt, high_rgb in ALTITUDE_STOPS[1:]:
        if alt <= high_alt:
            t = (alt - low_alt) / (high_alt - low_alt)
            mixed = tuple(
                round(a + (b - a) * t) for a, b in zip(low_rgb, high_rgb, strict=True)
            )
            return _rgb(mixed)
        low_alt, low_rgb = high_alt, high_rgb
    return _rgb(low_rgb)


def _rgb(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


@dataclass
class StationView:
    """The stations, the table's scroll position and what marks the frame."""

    stations: list[Station]
    license_id: str
    trace_hex: str
    source: str
    first_row: int = 0
    page_rows: int = field(default=10, init=False)

    def scroll(self, rows: int) -> None:
        """Move the table by ``rows`` (negative is up), within bounds."""
        last = max(0, len(self.stations) - self.page_rows)
        self.first_row = min(last, max(0, self.first_row + rows))

    def key(self, key: str) -> None:
        """Scroll for a navigation key name (``PageDown``, ``Home`` ...)."""
        steps = {
            "ArrowDown": 1,
            "ArrowUp": -1,
            "PageDown": self.page_rows,
            "PageUp": -self.page_rows,
            "Home": -len(self.stations),
            "End": len(self.stations),
        }
        self.scroll(steps.get(key, 0))

    @property
    def watermark(self) -> str:
        return f"licence {self.license_id} · trace {self.trace_hex}"


def split_layout(width: float, height: float) -> tuple[Box, Box]:
    """The map box and the table box between the title and the footer bar."""
    top = HEADER_HEIGHT
    body_h = height - top - FOOTER_HEIGHT
    if width >= WIDE_LAYOUT_MIN:
        map_w = math.floor(width * 0.55)
        return Box(0, top, map_w, body_h), Box(map_w, top, width - map_w, body_h)
    map_h = math.floor(body_h * 0.5)
    return Box(0, top, width, map_h), Box(0, top + map_h, width, body_h - map_h)


def preferred_height(width: float, rows: int) -> int:
    """The CSS height that shows the map and a useful part of the table."""
    if width >= WIDE_LAYOUT_MIN:
        return 560
    table = ROW_HEIGHT * (min(rows, 12) + 1) + FOOTER_HEIGHT
    return int(HEADER_HEIGHT + width * 0.75 + table + FOOTER_HEIGHT)


def draw_stations(
    painter: Painter, view: StationView, width: float, height: float, theme: Theme
) -> None:
    """One full frame: title, map, table and watermark."""
    painter.rect(Box(0, 0, width, height), theme.background)
    _title(painter, view, width, theme)
    map_box, table_box = split_layout(width, height)
    _map(painter, view.stations, map_box, theme)
    if width < WIDE_LAYOUT_MIN:
        painter.text(f"source: {view.source}", 12, map_box.y + 10, theme.muted, 10)
    _table(painter, view, table_box, theme)
    _watermark(painter, view.watermark, width, height, theme)
    _footer(painter, view, width, height, theme)


def draw_message(
    painter: Painter,
    title: str,
    detail: str,
    width: float,
    height: float,
    theme: Theme,
    is_error: bool,
) -> None:
    """A frame with one message: progress, or an error the user can read."""
    painter.rect(Box(0, 0, width, height), theme.background)
    colour = theme.error if is_error else theme.text
    painter.text(title, width / 2, height / 2 - 12, colour, 18, "center", "bold")
    if detail:
        painter.text(detail, width / 2, height / 2 + 16, theme.muted, 13, "center")


def _title(painter: Painter, view: StationView, width: float, theme: Theme) -> None:
    painter.rect(Box(0, 0, width, HEADER_HEIGHT), theme.panel)
    painter.text(
        "广东省气象观测站 Guangdong weather stations",
        14,
        HEADER_HEIGHT / 2,
        theme.text,
        15,
        weight="bold",
    )
    painter.text(
        f"{len(view.stations)} stations",
        width - 14,
        HEADER_HEIGHT / 2,
        theme.muted,
        12,
        "right",
    )


def _bounds(stations: Sequence[Station]) -> tuple[float, float, float, float]:
    lons = [s.lon for s in stations] or [0.0]
    lats = [s.lat for s in stations] or [0.0]
    pad = 0.25
    return min(lons) - pad, max(lons) + pad, min(lats) - pad, max(lats) + pad


def _map(painter: Painter, stations: Sequence[Station], box: Box, theme: Theme) -> None:
    lon0, lon1, lat0, lat1 = _bounds(stations)
    # Equirectangular with the mid-latitude's scale: fine for one province.
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    inner = Box(box.x + 44, box.y + 12, box.w - 56, box.h - 64)
    scale = min(inner.w / ((lon1 - lon0) * kx), inner.h / (lat1 - lat0))
    ox = inner.x + (inner.w - (lon1 - lon0) * kx * scale) / 2
    oy = inner.y + (inner.h - (lat1 - lat0) * scale) / 2

    def project(lon: float, lat: float) -> tuple[float, float]:
        return ox + (lon - lon0) * kx * scale, oy + (lat1 - lat) * scale

    _graticule(painter, (lon0, lon1, lat0, lat1), project, theme)
    for station in sorted(stations, key=lambda s: s.alt or 0.0):
        x, y = project(station.lon, station.lat)
        painter.dot(x, y, 3.2, altitude_colour(station.alt))
    _legend(
        painter, Box(box.x + 44, box.y + box.h - 40, min(220, box.w - 60), 10), theme
    )


def _graticule(
    painter: Painter,
    bounds: tuple[float, float, float, float],
    project: Any,
    theme: Theme,
) -> None:
    lon0, lon1, lat0, lat1 = bounds
    for lon in range(math.ceil(lon0), math.floor(lon1) + 1):
        x, y_top = project(lon, lat1)
        _, y_bottom = project(lon, lat0)
        painter.line(x, y_top, x, y_bottom, theme.grid)
        painter.text(f"{lon}°E", x, y_bottom + 10, theme.muted, 10, "center")
    for lat in range(math.ceil(lat0), math.floor(lat1) + 1):
        x_left, y = project(lon0, lat)
        x_right, _ = project(lon1, lat)
        painter.line(x_left, y, x_right, y, theme.grid)
        painter.text(f"{lat}°N", x_left - 4, y, theme.muted, 10, "right")


def _legend(painter: Painter, box: Box, theme: Theme) -> None:
    top_alt = ALTITUDE_STOPS[-1][0]
    steps = 24
    for i in range(steps):
        alt = top_alt * i / (steps - 1)
        painter.rect(
            Box(box.x + box.w * i / steps, box.y, box.w / steps + 1, box.h),
            altitude_colour(alt),
        )
    painter.text("0 m", box.x, box.y + box.h + 10, theme.muted, 10)
    painter.text(
        f"≥{top_alt:.0f} m", box.x + box.w, box.y + box.h + 10, theme.muted, 10, "right"
    )
    painter.text("altitude 海拔", box.x + box.w + 8, box.y + box.h / 2, theme.muted, 10)
    painter.dot(box.x + box.w + 14, box.y + box.h + 10, 3.2, NO_ALTITUDE)
    painter.text("no altitude", box.x + box.w + 22, box.y + box.h + 10, theme.muted, 10)


TABLE_COLUMNS = (
    ("id 站号", 0.00, "left"),
    ("county 县", 0.17, "left"),
    ("lon", 0.52, "right"),
    ("lat", 0.70, "right"),
    ("alt m", 0.94, "right"),
)


def _cells(station: Station) -> tuple[str, ...]:
    alt = "—" if station.alt is None else f"{station.alt:.1f}"
    return (
        station.station_id,
        station.county,
        f"{station.lon:.2f}",
        f"{station.lat:.2f}",
        alt,
    )


def _table(painter: Painter, view: StationView, box: Box, theme: Theme) -> None:
    painter.rect(box, theme.panel)
    inner_w = box.w - 24
    view.page_rows = max(1, int((box.h - ROW_HEIGHT - FOOTER_HEIGHT - 8) // ROW_HEIGHT))
    view.scroll(0)
    y = box.y + ROW_HEIGHT / 2 + 4
    for label, at, align in TABLE_COLUMNS:
        painter.text(
            label, _column_x(box, inner_w, at, align), y, theme.muted, 12, align, "bold"
        )
    painter.line(
        box.x + 12,
        y + ROW_HEIGHT / 2,
        box.x + box.w - 12,
        y + ROW_HEIGHT / 2,
        theme.grid,
    )
    shown = view.stations[view.first_row : view.first_row + view.page_rows]
    for station in shown:
        y += ROW_HEIGHT
        painter.dot(box.x + 8, y, 3, altitude_colour(station.alt))
        for value, (_, at, align) in zip(_cells(station), TABLE_COLUMNS, strict=True):
            painter.text(
                value, _column_x(box, inner_w, at, align), y, theme.text, 12, align
            )
    last = view.first_row + len(shown)
    pager = f"{view.first_row + 1}–{last} of {len(view.stations)} · scroll for more"
    painter.text(pager, box.x + 12, box.y + box.h - FOOTER_HEIGHT / 2, theme.muted, 11)


def _column_x(box: Box, inner_w: float, at: float, align: str) -> float:
    x = box.x + 16 + inner_w * at
    return x + (inner_w * 0.06 if align == "right" else 0)


def _watermark(
    painter: Painter, mark: str, width: float, height: float, theme: Theme
) -> None:
    # Tiled and tilted so a crop of any useful size still carries the mark.
    ctx = painter.ctx
    ctx.save()
    ctx.translate(width / 2, height / 2)
    ctx.rotate(-math.pi / 9)
    step_y, step_x = 110, 520
    reach = int(math.hypot(width, height) / 2) + step_x
    for row, dy in enumerate(range(-reach, reach, step_y)):
        offset = (row % 2) * step_x / 2
        for dx in range(-reach, reach, step_x):
            painter.text(mark, dx + offset, dy, theme.watermark, 13, "center")
    ctx.restore()


def _footer(
    painter: Painter, view: StationView, width: float, height: float, theme: Theme
) -> None:
    bar = Box(0, height - FOOTER_HEIGHT, width, FOOTER_HEIGHT)
    painter.rect(bar, theme.panel)
    middle = bar.y + bar.h / 2
    if width >= WIDE_LAYOUT_MIN:
        painter.text(f"source: {view.source}", 12, middle, theme.muted, 10)
        painter.text(view.watermark, width - 12, middle, theme.muted, 10, "right")
    else:
        painter.text(view.watermark, 12, middle, theme.muted, 10)
