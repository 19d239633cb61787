"""gd-terrain: terrain of Guangdong from the 0.1° MICAPS DEM in meteva."""

from __future__ import annotations

from ..datasets import METEVA_VERSION, Wheels
from . import geo, grids, shapes
from .spec import Derived, Payload, ProductSpec, Query

DEM_FILE = "meteva/resources/height_oy.txt"


def derive(wheels: Wheels) -> Derived:
    text = wheels.read(wheels.meteva, DEM_FILE).decode("ascii")
    grid = grids.read_micaps4(text, geo.GUANGDONG_BOX)
    outline = geo.guangdong_outline(wheels)
    return {
        "grid": _grid_payload(grid),
        "outline": geo.flat_rings(outline, 0.01),
        "facts": _facts(grid, outline),
    }


def _grid_payload(grid: grids.Grid) -> dict[str, object]:
    return {
        "lon0": round(grid.lon0, 4),
        "lat0": round(grid.lat0, 4),
        "dlon": round(grid.dlon, 4),
        "dlat": round(grid.dlat, 4),
        "nx": grid.nx,
        "ny": grid.ny,
        "scale": 1,
        "values": grids.flat_ints(grid),
    }


def _facts(grid: grids.Grid, outline: list[shapes.Ring]) -> dict[str, object]:
    """Statistics of the grid cells whose centres lie inside Guangdong."""
    inside = []
    for j, row in enumerate(grid.values):
        for i, value in enumerate(row):
            if value is not None and shapes.contains(outline, grid.lon(i), grid.lat(j)):
                inside.append((value, round(grid.lon(i), 2), round(grid.lat(j), 2)))
    top = max(inside)
    return {
        "cells": len(inside),
        "mean_m": round(sum(v for v, _, _ in inside) / len(inside)),
        "max_m": round(top[0]),
        "max_lon": top[1],
        "max_lat": top[2],
        "above_500_pct": round(
            100 * sum(v > 500 for v, _, _ in inside) / len(inside), 1
        ),
    }


def build(derived: Derived, query: Query) -> Payload:
    return {
        "product": "gd-terrain",
        "kind": "terrain",
        "title": "广东地形 Guangdong terrain",
        "units": "m",
        **derived,
        "source": f"CMA 0.1° DEM (height_oy.txt), meteva {METEVA_VERSION}",
    }


SPEC = ProductSpec(
    "gd-terrain",
    "Terrain of Guangdong (0.1° DEM)",
    1,
    f"meteva {METEVA_VERSION} (PyPI)",
    (DEM_FILE, geo.PROVINCE_SHP),
    derive,
    build,
)
