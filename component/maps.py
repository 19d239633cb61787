"""Maps: a lon/lat projection into a box, outlines, rasters and contours.

Equirectangular with the scale of the middle latitude: honest enough for
a province or East Asia at the sizes a component has. Outlines and
contours are built as one SVG path string each and drawn in one call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .paint import RGB, Box, Painter, Stops, Theme, ramp

Bounds = tuple[float, float, float, float]  # lon0, lat0, lon1, lat1

# Hypsometric tints (metres), low to high.
TERRAIN_STOPS: Stops = (
    (0.0, (112, 166, 110)),
    (100.0, (160, 196, 120)),
    (300.0, (226, 220, 150)),
    (600.0, (210, 170, 110)),
    (1000.0, (168, 120, 84)),
    (1600.0, (140, 110, 100)),
    (2500.0, (240, 240, 240)),
)


@dataclass(frozen=True)
class Projection:
    """Maps (lon, lat) into ``box`` keeping the aspect of the ground."""

    bounds: Bounds
    box: Box

    @property
    def _frame(self) -> tuple[float, float, float, float]:
        lon0, lat0, lon1, lat1 = self.bounds
        kx = math.cos(math.radians((lat0 + lat1) / 2))
        scale = min(self.box.w / ((lon1 - lon0) * kx), self.box.h / (lat1 - lat0))
        ox = self.box.x + (self.box.w - (lon1 - lon0) * kx * scale) / 2
        oy = self.box.y + (self.box.h - (lat1 - lat0) * scale) / 2
        return kx * scale, scale, ox, oy

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        sx, sy, ox, oy = self._frame
        return ox + (lon - self.bounds[0]) * sx, oy + (self.bounds[3] - lat) * sy

    def area(self, bounds: Bounds) -> Box:
        """The box that ``bounds`` covers on the canvas."""
        x0, y1 = self.xy(bounds[0], bounds[1])
        x1, y0 = self.xy(bounds[2], bounds[3])
        return Box(x0, y0, x1 - x0, y1 - y0)

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        sx, sy, ox, oy = self._frame
        return self.bounds[0] + (x - ox) / sx, self.bounds[3] - (y - oy) / sy


def fitted(bounds: Bounds, box: Box) -> Projection:
    """A projection of ``bounds`` into ``box`` with room for axis labels."""
    return Projection(bounds, Box(box.x + 40, box.y + 8, box.w - 52, box.h - 30))


def clip_to(painter: Painter, projection: Projection) -> None:
    """Clip later drawing to the mapped area until ``painter.ctx.restore()``."""
    area = projection.area(projection.bounds)
    painter.ctx.save()
    painter.ctx.beginPath()
    painter.ctx.rect(area.x, area.y, area.w, area.h)
    painter.ctx.clip()


def rings_path(
    projection: Projection, rings: Iterable[Sequence[float]], close: bool = True
) -> str:
    """One SVG path for flat ``[lon, lat, ...]`` rings."""
    xy = projection.xy
    parts = []
    for ring in rings:
        points = [xy(ring[k], ring[k + 1]) for k in range(0, len(ring) - 1, 2)]
        if len(points) < 2:
            continue
        head = f"M{points[0][0]:.1f} {points[0][1]:.1f}"
        body = "".join(f"L{x:.1f} {y:.1f}" for x, y in points[1:])
        parts.append(head + body + ("Z" if close else ""))
    return "".join(parts)


def graticule(
    painter: Painter, projection: Projection, theme: Theme, every: float = 1.0
) -> None:
    """Lines every ``every`` degrees with their labels on the left and bottom."""
    lon0, lat0, lon1, lat1 = projection.bounds
    digits = 0 if every >= 1 else 1
    for k in range(math.ceil(lon0 / every), math.floor(lon1 / every) + 1):
        lon = k * every
        x, top = projection.xy(lon, lat1)
        _, bottom = projection.xy(lon, lat0)
        painter.line(x, top, x, bottom, theme.grid)
        painter.text(f"{lon:.{digits}f}°E", x, bottom + 10, theme.muted, 10, "center")
    for k in range(math.ceil(lat0 / every), math.floor(lat1 / every) + 1):
        lat = k * every
        left, y = projection.xy(lon0, lat)
        right, _ = projection.xy(lon1, lat)
        painter.line(left, y, right, y, theme.grid)
        painter.text(f"{lat:.{digits}f}°N", left - 4, y, theme.muted, 10, "right")


@dataclass(frozen=True)
class GridData:
    """A grid payload: values row by row from the south, divided by ``scale``."""

    lon0: float
    lat0: float
    dlon: float
    dlat: float
    nx: int
    ny: int
    values: Sequence[float | None]
    scale: float = 1.0

    @classmethod
    def from_payload(cls, raw: Any, values: Sequence[Any] | None = None) -> GridData:
        return cls(
            float(raw["lon0"]),
            float(raw["lat0"]),
            float(raw["dlon"]),
            float(raw["dlat"]),
            int(raw["nx"]),
            int(raw["ny"]),
            raw["values"] if values is None else values,
            float(raw.get("scale", 1) or 1),
        )

    def value(self, i: int, j: int) -> float | None:
        raw = self.values[j * self.nx + i]
        return None if raw is None else raw / self.scale

    @property
    def bounds(self) -> Bounds:
        """The cells' outer edges."""
        return (
            self.lon0 - self.dlon / 2,
            self.lat0 - self.dlat / 2,
            self.lon0 + (self.nx - 0.5) * self.dlon,
            self.lat0 + (self.ny - 0.5) * self.dlat,
        )


def grid_rgba(grid: GridData, colour: Any, missing: RGB | None = None) -> bytes:
    """The grid as RGBA pixels, north row first; ``colour(value) -> RGB|None``."""
    out = bytearray()
    for j in range(grid.ny - 1, -1, -1):
        for i in range(grid.nx):
            rgb = colour(grid.value(i, j))
            rgb = rgb if rgb is not None else missing
            out += bytes((*rgb, 255)) if rgb is not None else b"\0\0\0\0"
    return bytes(out)


def raster(
    painter: Painter,
    projection: Projection,
    grid: GridData,
    colour: Any,
    smooth: bool = True,
) -> None:
    """Draw the grid's cells coloured by ``colour`` over their area."""
    rgba = grid_rgba(grid, colour)
    painter.image(rgba, grid.nx, grid.ny, projection.area(grid.bounds), smooth)


def terrain_colour(value: float | None) -> RGB | None:
    return ramp(value, TERRAIN_STOPS)


# Marching squares: for each corner pattern, the pairs of cell edges to join.
_CASES = {
    1: ((3, 0),),
    2: ((0, 1),),
    3: ((3, 1),),
    4: ((1, 2),),
    5: ((3, 0), (1, 2)),
    6: ((0, 2),),
    7: ((3, 2),),
    8: ((2, 3),),
    9: ((0, 2),),
    10: ((0, 1), (2, 3)),
    11: ((1, 2),),
    12: ((3, 1),),
    13: ((0, 1),),
    14: ((3, 0),),
}


Segment = tuple[tuple[float, float], tuple[float, float]]


def contour_segments(grid: GridData, level: float) -> list[Segment]:
    """Line segments (lon, lat) where the grid crosses ``level``."""
    segments = []
    for j in range(grid.ny - 1):
        for i in range(grid.nx - 1):
            corners = _corners(grid, i, j)
            if corners is None:
                continue
            case = sum(1 << k for k, c in enumerate(corners) if c >= level)
            for a, b in _CASES.get(case, ()):
                segments.append(
                    (
                        _edge(grid, i, j, a, corners, level),
                        _edge(grid, i, j, b, corners, level),
                    )
                )
    return segments


def _corners(grid: GridData, i: int, j: int) -> tuple[float, ...] | None:
    values = (
        grid.value(i, j),
        grid.value(i + 1, j),
        grid.value(i + 1, j + 1),
        grid.value(i, j + 1),
    )
    if any(v is None for v in values):
        return None
    return tuple(v for v in values if v is not None)


def _edge(
    grid: GridData, i: int, j: int, edge: int, corners: Sequence[Any], level: float
) -> tuple[float, float]:
    # Edges: 0 bottom (c0-c1), 1 right (c1-c2), 2 top (c3-c2), 3 left (c0-c3).
    a, b, da, db = {
        0: (0, 1, (0, 0), (1, 0)),
        1: (1, 2, (1, 0), (1, 1)),
        2: (3, 2, (0, 1), (1, 1)),
        3: (0, 3, (0, 0), (0, 1)),
    }[edge]
    va, vb = corners[a], corners[b]
    t = (level - va) / (vb - va) if vb != va else 0.5
    x = i + da[0] + (db[0] - da[0]) * t
    y = j + da[1] + (db[1] - da[1]) * t
    return grid.lon0 + x * grid.dlon, grid.lat0 + y * grid.dlat


def segments_path(projection: Projection, segments: Sequence[Segment]) -> str:
    parts = []
    for (lon0, lat0), (lon1, lat1) in segments:
        x0, y0 = projection.xy(lon0, lat0)
        x1, y1 = projection.xy(lon1, lat1)
        parts.append(f"M{x0:.1f} {y0:.1f}L{x1:.1f} {y1:.1f}")
    return "".join(parts)


def colour_bar(
    painter: Painter,
    box: Box,
    stops: Stops,
    labels: Sequence[float],
    unit: str,
    theme: Theme,
) -> None:
    """A horizontal legend bar from the first to the last stop."""
    low, high = stops[0][0], stops[-1][0]
    steps = 32
    for k in range(steps):
        rgb = ramp(low + (high - low) * (k + 0.5) / steps, stops) or (0, 0, 0)
        painter.rect(
            Box(box.x + box.w * k / steps, box.y, box.w / steps + 1, box.h),
            "#" + "".join(f"{c:02x}" for c in rgb),
        )
    for value in labels:
        x = box.x + box.w * (value - low) / (high - low or 1)
        painter.text(f"{value:g}", x, box.y + box.h + 9, theme.muted, 10, "center")
    painter.text(unit, box.x + box.w + 6, box.y + box.h / 2, theme.muted, 10)
