"""ESRI shapefiles read with ``struct``: polygon and polyline records, dBASE rows.

Only what the meteva map layers use: shape types 3 (polyline) and
5 (polygon) in little-endian doubles, and dBASE III tables of character
and numeric fields. Rings are lists of ``(lon, lat)``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass

Ring = list[tuple[float, float]]
BBox = tuple[float, float, float, float]

_FILE_HEADER = 100
_RECORD_HEADER = 8


class ShapefileError(ValueError):
    """The bytes are not a shapefile (or dBASE table) of the supported kinds."""


@dataclass(frozen=True)
class Shape:
    """One record: its bounding box (lon0, lat0, lon1, lat1) and its rings."""

    bbox: BBox
    rings: list[Ring]


def read_shapes(data: bytes) -> list[Shape]:
    """Every record of a ``.shp`` file; null shapes come back without rings."""
    if len(data) < _FILE_HEADER or struct.unpack(">i", data[:4])[0] != 9994:
        raise ShapefileError("not a shapefile")
    return list(_records(data))


def _records(data: bytes) -> Iterator[Shape]:
    offset = _FILE_HEADER
    while offset + _RECORD_HEADER <= len(data):
        _, words = struct.unpack(">ii", data[offset : offset + _RECORD_HEADER])
        start = offset + _RECORD_HEADER
        yield _shape(data[start : start + 2 * words])
        offset = start + 2 * words


def _shape(record: bytes) -> Shape:
    (kind,) = struct.unpack("<i", record[:4])
    if kind == 0:
        return Shape((0.0, 0.0, 0.0, 0.0), [])
    if kind not in (3, 5):
        raise ShapefileError(f"shape type {kind} is not supported")
    bbox = struct.unpack("<4d", record[4:36])
    n_parts, n_points = struct.unpack("<ii", record[36:44])
    parts = struct.unpack(f"<{n_parts}i", record[44 : 44 + 4 * n_parts])
    at = 44 + 4 * n_parts
    flat = struct.unpack(f"<{2 * n_points}d", record[at : at + 16 * n_points])
    points = list(zip(flat[::2], flat[1::2], strict=True))
    ends = list(parts[1:]) + [n_points]
    return Shape(bbox, [points[a:b] for a, b in zip(parts, ends, strict=True)])


def read_dbf(data: bytes, encoding: str = "gbk") -> list[dict[str, str]]:
    """The rows of a dBASE III table, every field as stripped text."""
    if len(data) < 32:
        raise ShapefileError("not a dBASE table")
    count, header_len, record_len = struct.unpack("<IHH", data[4:12])
    fields = []
    at = 32
    while data[at] != 0x0D:
        name = data[at : at + 11].split(b"\0")[0].decode("ascii")
        fields.append((name, data[at + 16]))
        at += 32
    rows = []
    for i in range(count):
        record = data[header_len + i * record_len : header_len + (i + 1) * record_len]
        row, pos = {}, 1
        for name, width in fields:
            row[name] = record[pos : pos + width].decode(encoding, "replace").strip()
            pos += width
        rows.append(row)
    return rows


def overlaps(bbox: BBox, area: BBox) -> bool:
    """Whether two (lon0, lat0, lon1, lat1) boxes overlap."""
    return not (
        bbox[2] < area[0] or bbox[0] > area[2] or bbox[3] < area[1] or bbox[1] > area[3]
    )


def contains(rings: list[Ring], lon: float, lat: float) -> bool:
    """Even-odd point-in-polygon over all rings (holes count as outside)."""
    inside = False
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
            if (y0 > lat) != (y1 > lat):
                if lon < x0 + (lat - y0) * (x1 - x0) / (y1 - y0):
                    inside = not inside
    return inside


def simplify(ring: Ring, tolerance: float) -> Ring:
    """Ramer-Douglas-Peucker on one ring or line, keeping both ends."""
    if len(ring) < 3:
        return list(ring)
    keep = [False] * len(ring)
    keep[0] = keep[-1] = True
    stack = [(0, len(ring) - 1)]
    while stack:
        first, last = stack.pop()
        index, distance = _farthest(ring, first, last)
        if distance > tolerance:
            keep[index] = True
            stack += [(first, index), (index, last)]
    return [p for p, k in zip(ring, keep, strict=True) if k]


def _farthest(ring: Ring, first: int, last: int) -> tuple[int, float]:
    (x0, y0), (x1, y1) = ring[first], ring[last]
    dx, dy = x1 - x0, y1 - y0
    norm = math.hypot(dx, dy)
    best, best_d = first, -1.0
    for i in range(first + 1, last):
        x, y = ring[i]
        if norm == 0:
            d = math.hypot(x - x0, y - y0)
        else:
            d = abs(dy * (x - x0) - dx * (y - y0)) / norm
        if d > best_d:
            best, best_d = i, d
    return best, best_d


def ring_area_km2(ring: Ring) -> float:
    """Area of one ring in km², on a sphere, for small rings (equirectangular)."""
    if len(ring) < 3:
        return 0.0
    lat0 = sum(p[1] for p in ring) / len(ring)
    kx = 111.32 * math.cos(math.radians(lat0))
    ky = 110.57
    total = 0.0
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        total += (x0 * kx) * (y1 * ky) - (x1 * kx) * (y0 * ky)
    return abs(total) / 2


def flatten(ring: Ring, digits: int = 3) -> list[float]:
    """A ring as ``[lon, lat, lon, lat, ...]`` rounded to ``digits`` decimals."""
    out: list[float] = []
    for lon, lat in ring:
        out += [round(lon, digits), round(lat, digits)]
    return out
