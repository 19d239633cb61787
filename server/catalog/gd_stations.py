"""gd-stations: the Guangdong weather-station network (CMA station catalogues)."""

from __future__ import annotations

from ..datasets import (
    ALTITUDE_FILE,
    COUNTY_FILE,
    LONLAT_FILE,
    METEVA_VERSION,
    Wheels,
    read_stations,
)
from .spec import Derived, Payload, ProductSpec, Query

COLUMNS = ["id", "province", "county", "lon", "lat", "alt"]


def derive(wheels: Wheels) -> Derived:
    return [
        [s.station_id, s.province, s.county, s.lon, s.lat, s.alt]
        for s in read_stations(wheels.meteva)
    ]


def build(rows: Derived, query: Query) -> Payload:
    return {
        "product": "gd-stations",
        "columns": COLUMNS,
        "rows": rows,
        "source": f"CMA station catalogue, meteva {METEVA_VERSION}",
    }


SPEC = ProductSpec(
    "gd-stations",
    "Guangdong weather-station network",
    1,
    f"meteva {METEVA_VERSION} (PyPI)",
    (COUNTY_FILE, LONLAT_FILE, ALTITUDE_FILE),
    derive,
    build,
)
