"""cn-z500-climate: monthly 500 hPa geopotential height climatology, East Asia.

meteva's ``z500_cli.nc`` holds a 500 hPa geopotential climatology on a
1.5° global grid, twice a day through a 366-day year (time axis in hours
since 2020-01-01). Each month here is the mean of that month's time steps,
converted from geopotential (m² s⁻², after the file's scale_factor) to
geopotential height in decametres (divided by g₀ = 9.80665 and by 10).
"""

from __future__ import annotations

import datetime

from ..datasets import METEVA_VERSION, Wheels
from . import geo, grids
from .spec import Derived, Payload, ProductSpec, Query, int_param

Z500_FILE = "meteva/resources/z500_cli.nc"
BOX = (70.5, 0.0, 150.0, 60.0)
G0 = 9.80665
EPOCH = datetime.datetime(2020, 1, 1)
# Heights are sent as tenths of a decametre (5880 = 588.0 dagpm).
TENTHS = 10


def _months(hours: list[int]) -> list[int]:
    return [(EPOCH + datetime.timedelta(hours=int(h))).month for h in hours]


def derive(wheels: Wheels) -> Derived:
    handle, values, lats, lons = grids.read_netcdf(
        wheels.read(wheels.meteva, Z500_FILE)
    )
    try:
        i0, i1 = grids.index_range(lons, BOX[0], BOX[2])
        j0, j1 = grids.index_range(lats, BOX[1], BOX[3])
        months = _months(list(handle["time"][:]))
        block = values[0, 0, :, 0, j0:j1, i0:i1] * grids.scale_factor(values)
    finally:
        handle.close()
    monthly = []
    for month in range(1, 13):
        steps = [k for k, m in enumerate(months) if m == month]
        mean = block[steps].mean(axis=0) / G0 / 10
        monthly.append([round(float(v) * TENTHS) for v in mean.ravel()])
    return {
        "lon0": float(lons[i0]),
        "lat0": float(lats[j0]),
        "dlon": float(lons[i0 + 1] - lons[i0]),
        "dlat": float(lats[j0 + 1] - lats[j0]),
        "nx": i1 - i0,
        "ny": j1 - j0,
        "months": monthly,
        "steps": [sum(1 for m in months if m == k) for k in range(1, 13)],
        "coast": geo.layer_rings(wheels, geo.WORLD_SHP, BOX, 0.1),
        "border": geo.layer_rings(wheels, geo.BORDER_SHP, BOX, 0.05),
    }


def build(derived: Derived, query: Query) -> Payload:
    month = int_param(query, "month", 7, 1, 12)
    grid = {k: derived[k] for k in ("lon0", "lat0", "dlon", "dlat", "nx", "ny")}
    return {
        "product": "cn-z500-climate",
        "kind": "z500",
        "title": "500 hPa 位势高度气候态 500 hPa height climatology",
        "month": month,
        "units": "dagpm",
        "grid": {**grid, "scale": TENTHS},
        "months": derived["months"],
        "steps": derived["steps"],
        "coast": derived["coast"],
        "border": derived["border"],
        "source": f"z500_cli.nc climatology, meteva {METEVA_VERSION}",
    }


SPEC = ProductSpec(
    "cn-z500-climate",
    "500 hPa height climatology by month",
    2,
    f"meteva {METEVA_VERSION} (PyPI)",
    (Z500_FILE, geo.WORLD_SHP, geo.BORDER_SHP),
    derive,
    build,
)
