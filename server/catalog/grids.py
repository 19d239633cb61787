"""Regular lon/lat grids from the meteva files: MICAPS type 4 text and netCDF-4.

:class:`Grid` keeps values row by row from south to north, west to east,
``None`` where the source has no value. netCDF-4 files are HDF5 and are
read with ``h5py`` (imported only here, at set-up time, never by the
component).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BBox = tuple[float, float, float, float]


class GridError(ValueError):
    """The file is not a grid of the expected shape."""


@dataclass(frozen=True)
class Grid:
    """Values on a regular grid: ``values[j][i]`` at (lon0 + i·dlon, lat0 + j·dlat)."""

    lon0: float
    lat0: float
    dlon: float
    dlat: float
    values: list[list[float | None]]

    @property
    def nx(self) -> int:
        return len(self.values[0]) if self.values else 0

    @property
    def ny(self) -> int:
        return len(self.values)

    def lon(self, i: float) -> float:
        return self.lon0 + i * self.dlon

    def lat(self, j: float) -> float:
        return self.lat0 + j * self.dlat

    def nearest(self, lon: float, lat: float) -> float | None:
        """The value of the cell nearest to (lon, lat); None outside the grid."""
        i = round((lon - self.lon0) / self.dlon)
        j = round((lat - self.lat0) / self.dlat)
        if 0 <= i < self.nx and 0 <= j < self.ny:
            return self.values[j][i]
        return None


def read_micaps4(text: str, bbox: BBox) -> Grid:
    """The part of a MICAPS type-4 grid inside ``bbox`` (lon0, lat0, lon1, lat1).

    Header (after the ``diamond 4`` line and the time line): dlon, dlat,
    lon0, lon1, lat0, lat1, nx, ny, then contour settings; values follow
    row by row from ``lat0``. A negative ``dlat`` runs north to south.
    """
    tokens = text.split()
    if len(tokens) < 22 or tokens[0] != "diamond" or tokens[1] != "4":
        raise GridError("not a MICAPS type-4 file")
    head = [float(t) for t in tokens[9:17]]
    dlon, dlat, lon0, _, lat0, _, nx_f, ny_f = head
    nx, ny = int(nx_f), int(ny_f)
    values = tokens[22 : 22 + nx * ny]
    if len(values) != nx * ny:
        raise GridError("MICAPS type-4 grid is truncated")
    rows: list[list[float | None]] = [
        [float(v) for v in values[j * nx : (j + 1) * nx]] for j in range(ny)
    ]
    grid = Grid(lon0, lat0, dlon, dlat, rows)
    if dlat < 0:
        grid = Grid(lon0, lat0 + (ny - 1) * dlat, dlon, -dlat, rows[::-1])
    return crop(grid, bbox)


def crop(grid: Grid, bbox: BBox) -> Grid:
    """The cells of ``grid`` inside ``bbox``."""
    i0 = max(0, math.ceil((bbox[0] - grid.lon0) / grid.dlon - 1e-9))
    i1 = min(grid.nx - 1, math.floor((bbox[2] - grid.lon0) / grid.dlon + 1e-9))
    j0 = max(0, math.ceil((bbox[1] - grid.lat0) / grid.dlat - 1e-9))
    j1 = min(grid.ny - 1, math.floor((bbox[3] - grid.lat0) / grid.dlat + 1e-9))
    if i1 < i0 or j1 < j0:
        raise GridError("the area lies outside the grid")
    rows = [row[i0 : i1 + 1] for row in grid.values[j0 : j1 + 1]]
    return Grid(grid.lon(i0), grid.lat(j0), grid.dlon, grid.dlat, rows)


def block_mean(grid: Grid, factor: int) -> Grid:
    """Means of ``factor`` × ``factor`` blocks; a block with no value is None."""
    rows = []
    for j in range(0, grid.ny - factor + 1, factor):
        block_rows = grid.values[j : j + factor]
        rows.append(
            [
                _mean(block_rows, i, factor)
                for i in range(0, grid.nx - factor + 1, factor)
            ]
        )
    shift = (factor - 1) / 2
    return Grid(
        grid.lon(shift), grid.lat(shift), grid.dlon * factor, grid.dlat * factor, rows
    )


def _mean(rows: Sequence[Sequence[float | None]], i: int, factor: int) -> float | None:
    cells = [v for row in rows for v in row[i : i + factor] if v is not None]
    return sum(cells) / len(cells) if cells else None


def read_netcdf(data: bytes, variable: str = "data0") -> tuple[Any, Any, Any, Any]:
    """``(h5py file, values, lat, lon)`` of a meteva netCDF-4 grid.

    The variable's dimensions are (member, level, time, dtime, lat, lon).
    The file object must stay open while ``values`` is read.
    """
    import h5py  # set-up time only: the server reads netCDF-4 through HDF5

    handle = h5py.File(io.BytesIO(data), "r")
    values = handle[variable]
    if values.ndim != 6:
        handle.close()
        raise GridError(f"{variable} is not a meteva 6-dimensional grid")
    return handle, values, handle["lat"][:], handle["lon"][:]


def scale_factor(dataset: Any) -> float:
    """The netCDF ``scale_factor`` attribute, 1 when absent."""
    raw = dataset.attrs.get("scale_factor")
    return 1.0 if raw is None else float(raw[0] if hasattr(raw, "__len__") else raw)


def index_range(axis: Sequence[float], low: float, high: float) -> tuple[int, int]:
    """First and one-past-last index of an ascending axis within [low, high]."""
    inside = [k for k, v in enumerate(axis) if low - 1e-9 <= float(v) <= high + 1e-9]
    if not inside:
        raise GridError("the area lies outside the grid")
    return inside[0], inside[-1] + 1


def flat_ints(grid: Grid, scale: float = 1.0) -> list[int | None]:
    """Grid values row by row (south first) as rounded ints of value × scale."""
    return [None if v is None else round(v * scale) for row in grid.values for v in row]
