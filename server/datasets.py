"""Real public data behind the demo products, fetched and checked at set-up.

The China Meteorological Administration station catalogues ship inside the
``meteva`` wheel on PyPI. The wheel is downloaded once with pip, its SHA-256
is checked against the pinned value, and the files are read straight from
the zip: nothing is unpacked and no number is invented.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from xinfeng.sdk.errors import XinfengError

logger = logging.getLogger(__name__)

METEVA_VERSION = "1.9.6.2"
METEVA_WHEEL = f"meteva-{METEVA_VERSION}-py3-none-any.whl"
METEVA_SHA256 = "772bbe95cadb32b80d8eb5e380d3c61bc1711282f8ccbe11d7eeff35e0f38a93"
_STATIONS = "meteva/resources/stations/"
COUNTY_FILE = _STATIONS + "station_id_pro_county.txt"
LONLAT_FILE = _STATIONS + "station_1w_plus_1w.txt"
ALTITUDE_FILE = _STATIONS + "station_global_alt_11621.txt"
GUANGDONG = "广东"


class DatasetError(XinfengError):
    """A data source could not be fetched or did not match its pinned hash."""

    code = "dataset_error"


@dataclass(frozen=True)
class Station:
    """One CMA surface station."""

    station_id: str
    province: str
    county: str
    lon: float
    lat: float
    alt: float | None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_meteva(cache_dir: Path) -> Path:
    """Return the path of the pinned meteva wheel, downloading it if needed.

    Raises DatasetError when pip fails or the file's hash does not match.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / METEVA_WHEEL
    if not wheel.exists():
        print(f"fetching meteva {METEVA_VERSION} from PyPI (46 MB) ...", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
               "-d", str(cache_dir), f"meteva=={METEVA_VERSION}"]
        if subprocess.run(cmd, check=False).returncode != 0 or not wheel.exists():
            raise DatasetError("could not download the meteva wheel with pip")
    actual = _sha256(wheel)
    if actual != METEVA_SHA256:
        wheel.rename(wheel.with_suffix(".rejected"))
        raise DatasetError(f"meteva wheel hash mismatch: {actual}")
    return wheel


def _micaps_rows(text: str) -> dict[str, list[str]]:
    """Rows of a MICAPS type-3 station file, keyed by station id."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines()[3:]:
        fields = line.split()
        if len(fields) >= 4:
            rows[fields[0]] = fields
    return rows


def read_stations(wheel: Path, province: str = GUANGDONG) -> list[Station]:
    """All stations of ``province`` with coordinates, sorted by id.

    Altitude comes from the global catalogue where it lists the station;
    the others carry ``None`` rather than a guessed value.
    """
    with zipfile.ZipFile(wheel) as zf:
        counties = zf.read(COUNTY_FILE).decode("utf-8")
        lonlat = _micaps_rows(zf.read(LONLAT_FILE).decode("utf-8", "replace"))
        alts = _micaps_rows(zf.read(ALTITUDE_FILE).decode("utf-8", "replace"))
    stations = []
    for line in counties.splitlines():
        fields = line.split()
        if len(fields) != 3 or fields[0] not in lonlat:
            continue
        sid, prov, county = fields
        # National stations spell the province "广东", regional ones "广东省".
        if prov not in (province, province + "省"):
            continue
        lon, lat = float(lonlat[sid][1]), float(lonlat[sid][2])
        alt = float(alts[sid][3]) if sid in alts else None
        stations.append(Station(sid, province, county, lon, lat, alt))
    stations.sort(key=lambda s: s.station_id)
    logger.debug("read %d stations for one province", len(stations))
    return stations
