"""gd-station-density: Guangdong's outline, county lines and station density.

The 371 stations of gd-stations are counted in cells of 0.5° × 0.5°; each
cell's density is its count over the cell's area on the sphere. The
county lines are the arcs of meteva's ``BOUL_X`` layer coded 44xxxx (the
layer stores boundary arcs, each under one adjoining county's code).
"""

from __future__ import annotations

import math
from typing import Any

from ..datasets import METEVA_VERSION, Wheels
from . import geo, shapes
from .gd_stations import derive as derive_stations
from .spec import Derived, Payload, ProductSpec, Query, first_page

CELL_DEG = 0.5
ROWS_PER_PAGE = 12
EARTH_RADIUS_KM = 6371.0


def cell_area_km2(lat0: float, lat1: float, dlon: float) -> float:
    """Area of a lon/lat cell on a sphere of the Earth's mean radius."""
    band = math.sin(math.radians(lat1)) - math.sin(math.radians(lat0))
    return EARTH_RADIUS_KM**2 * math.radians(dlon) * band


def _county_lines(wheels: Wheels) -> list[list[float]]:
    layer = shapes.read_shapes(wheels.read(wheels.meteva, geo.COUNTY_SHP))
    table = shapes.read_dbf(wheels.read(wheels.meteva, geo.COUNTY_DBF))
    rings: list[shapes.Ring] = []
    for shape, row in zip(layer, table, strict=True):
        if shape.rings and 440000 <= round(float(row["PAC"])) < 450000:
            rings += shape.rings
    return geo.flat_rings(rings, 0.01, min_points=2)


def _cells(stations: list[list[Any]]) -> list[list[Any]]:
    lon0, lat0, lon1, lat1 = geo.GUANGDONG_BOX
    counts: dict[tuple[int, int], int] = {}
    for row in stations:
        key = (
            math.floor((row[3] - lon0) / CELL_DEG),
            math.floor((row[4] - lat0) / CELL_DEG),
        )
        counts[key] = counts.get(key, 0) + 1
    cells = []
    for (i, j), count in sorted(counts.items()):
        south = lat0 + j * CELL_DEG
        area = cell_area_km2(south, south + CELL_DEG, CELL_DEG)
        cells.append(
            [
                round(lon0 + i * CELL_DEG, 2),
                round(south, 2),
                count,
                round(1000 * count / area, 2),
            ]
        )
    return cells


def derive(wheels: Wheels) -> Derived:
    outline = geo.guangdong_outline(wheels)
    stations = derive_stations(wheels)
    area = sum(shapes.ring_area_km2(r) for r in outline)
    return {
        "cells": _cells(stations),
        "outline": geo.flat_rings(outline, 0.01),
        "counties": _county_lines(wheels),
        "points": [[row[3], row[4]] for row in stations],
        "area_km2": round(area),
        "total": len(stations),
    }


def build(derived: Derived, query: Query) -> Payload:
    rows = sorted(
        (
            [f"{c[0] + CELL_DEG / 2:.2f}°E {c[1] + CELL_DEG / 2:.2f}°N", c[2], c[3]]
            for c in derived["cells"]
        ),
        key=lambda r: (-r[1], r[0]),
    )
    return {
        "product": "gd-station-density",
        "kind": "density",
        "title": "站点密度 Station density, Guangdong",
        "cell_deg": CELL_DEG,
        **derived,
        "columns": ["cell centre", "stations", "per 1000 km²"],
        "rows": rows,
        **first_page(rows, query, ROWS_PER_PAGE),
        "source": f"Province and BOUL_X layers, station catalogue, "
        f"meteva {METEVA_VERSION}",
    }


SPEC = ProductSpec(
    "gd-station-density",
    "Guangdong outline with station density",
    1,
    f"meteva {METEVA_VERSION} (PyPI)",
    (geo.PROVINCE_SHP, geo.COUNTY_SHP, geo.COUNTY_DBF),
    derive,
    build,
)
