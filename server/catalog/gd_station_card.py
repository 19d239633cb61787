"""gd-station-card: one Guangdong station, its neighbours and the 1 km relief.

The card joins the station catalogue (as gd-stations) with the 1 km DEM of
China that meteva ships (``dem_0.00833.nc``): the DEM height of the cell
under the station, and a window of the relief around it.
"""

from __future__ import annotations

import array
import math
from typing import Any

from ..datasets import METEVA_VERSION, Wheels
from . import geo, grids
from .gd_stations import derive as derive_stations
from .spec import Derived, Payload, ProductSpec, Query, QueryError

DEM_FILE = "meteva/resources/stations/dem_0.00833.nc"
DEFAULT_STATION = "59287"  # Guangzhou
WINDOW = 18  # cells each side of the station: 37 × 37 cells of 1/120°
NEIGHBOURS = 6
EARTH_RADIUS_KM = 6371.0


def derive(wheels: Wheels) -> Derived:
    dem = _dem_crop(wheels)
    return {"stations": derive_stations(wheels), "dem": dem}


def _dem_crop(wheels: Wheels) -> dict[str, Any]:
    """The DEM over Guangdong as int16 bytes, rows south to north."""
    data = wheels.read(wheels.meteva, DEM_FILE)
    handle, values, lats, lons = grids.read_netcdf(data)
    try:
        lon0, lat0, lon1, lat1 = geo.GUANGDONG_BOX
        i0, i1 = grids.index_range(lons, lon0, lon1)
        j0, j1 = grids.index_range(lats, lat0, lat1)
        block = values[0, 0, 0, 0, j0:j1, i0:i1]
        scale = grids.scale_factor(values)
    finally:
        handle.close()
    cells = array.array("h", (round(float(v) * scale) for v in block.ravel()))
    return {
        "lon0": float(lons[i0]),
        "lat0": float(lats[j0]),
        "step": float(lons[i0 + 1] - lons[i0]),
        "nx": i1 - i0,
        "ny": j1 - j0,
        "cells": cells.tobytes(),
    }


def distance_km(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Great-circle distance on a sphere of the Earth's mean radius."""
    p0, p1 = math.radians(lat0), math.radians(lat1)
    dp, dl = p1 - p0, math.radians(lon1 - lon0)
    h = math.sin(dp / 2) ** 2 + math.cos(p0) * math.cos(p1) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def _window(dem: dict[str, Any], lon: float, lat: float) -> dict[str, Any]:
    cells = array.array("h")
    cells.frombytes(dem["cells"])
    nx, ny, step = int(dem["nx"]), int(dem["ny"]), float(dem["step"])
    ci = round((lon - dem["lon0"]) / step)
    cj = round((lat - dem["lat0"]) / step)

    def at(i: int, j: int) -> int | None:
        return cells[j * nx + i] if 0 <= i < nx and 0 <= j < ny else None

    span = range(-WINDOW, WINDOW + 1)
    return {
        "lon0": round(dem["lon0"] + (ci - WINDOW) * step, 5),
        "lat0": round(dem["lat0"] + (cj - WINDOW) * step, 5),
        "dlon": step,
        "dlat": step,
        "nx": len(span),
        "ny": len(span),
        "scale": 1,
        "values": [at(ci + di, cj + dj) for dj in span for di in span],
        "here": at(ci, cj),
    }


def build(derived: Derived, query: Query) -> Payload:
    station_id = query.get("station") or DEFAULT_STATION
    rows = {row[0]: row for row in derived["stations"]}
    if station_id not in rows:
        raise QueryError("no Guangdong station has that id")
    sid, province, county, lon, lat, alt = rows[station_id]
    relief = _window(derived["dem"], lon, lat)
    near = sorted(
        (round(distance_km(lon, lat, r[3], r[4]), 1), r[0], r[2], r[3], r[4])
        for r in derived["stations"]
        if r[0] != sid
    )[:NEIGHBOURS]
    return {
        "product": "gd-station-card",
        "kind": "card",
        "title": "测站详情 Station card",
        "station": {
            "id": sid,
            "province": province,
            "county": county,
            "lon": lon,
            "lat": lat,
            "alt": alt,
            "national": len(sid) == 5,
            "dem_m": relief.pop("here"),
        },
        "neighbours": [list(n) for n in near],
        "relief": relief,
        "source": f"CMA station catalogue and 1 km DEM, meteva {METEVA_VERSION}",
    }


SPEC = ProductSpec(
    "gd-station-card",
    "Guangdong station card with 1 km relief",
    2,
    f"meteva {METEVA_VERSION} (PyPI)",
    (DEM_FILE,),
    derive,
    build,
)
