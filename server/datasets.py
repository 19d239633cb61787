"""Real public data behind the demo products, fetched and checked at set-up.

Two wheels on PyPI carry the sources: ``meteva`` (China Meteorological
Administration station catalogues, a DEM, map layers, a 500 hPa
climatology, colour scales) and ``vega_datasets`` (daily and hourly
weather observed in Seattle, from NOAA). Each wheel is downloaded once with
pip, its SHA-256 is checked against the value pinned here, and files are
read straight from the zip: nothing is unpacked and no number is invented.

What the products derive from these files is cached under the cache
directory in files named after the pinned hashes (:func:`cached`), so a
changed source can never be served from an old derivation.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from xinfeng.sdk.errors import XinfengError

logger = logging.getLogger(__name__)

METEVA_VERSION = "1.9.6.2"
METEVA_WHEEL = f"meteva-{METEVA_VERSION}-py3-none-any.whl"
METEVA_SHA256 = "772bbe95cadb32b80d8eb5e380d3c61bc1711282f8ccbe11d7eeff35e0f38a93"
VEGA_VERSION = "0.9.0"
VEGA_WHEEL = f"vega_datasets-{VEGA_VERSION}-py3-none-any.whl"
VEGA_SHA256 = "3d7c63917be6ca9b154b565f4779a31fedce57b01b5b9d99d8a34a7608062a1d"
_STATIONS = "meteva/resources/stations/"
COUNTY_FILE = _STATIONS + "station_id_pro_county.txt"
LONLAT_FILE = _STATIONS + "station_1w_plus_1w.txt"
ALTITUDE_FILE = _STATIONS + "station_global_alt_11621.txt"
GUANGDONG = "广东"
# Bumped when a derivation changes, so cached results of the old one are unused.
DERIVED_FORMAT = 1


@dataclass(frozen=True)
class WheelSource:
    """One pinned wheel on PyPI that carries data files."""

    name: str
    version: str
    wheel: str
    sha256: str
    size: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


METEVA = WheelSource("meteva", METEVA_VERSION, METEVA_WHEEL, METEVA_SHA256, "46 MB")
VEGA = WheelSource("vega_datasets", VEGA_VERSION, VEGA_WHEEL, VEGA_SHA256, "0.2 MB")
SOURCES = (METEVA, VEGA)


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


def ensure_wheel(source: WheelSource, cache_dir: Path) -> Path:
    """Return the path of the pinned wheel, downloading it with pip if needed.

    Raises DatasetError when pip fails or the file's hash does not match;
    a mismatching file is renamed ``*.rejected``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / source.wheel
    if not wheel.exists():
        print(f"fetching {source.requirement} from PyPI ({source.size}) ...",
              flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
               "-d", str(cache_dir), source.requirement]
        if subprocess.run(cmd, check=False).returncode != 0 or not wheel.exists():
            raise DatasetError(f"could not download the {source.name} wheel with pip")
    actual = _sha256(wheel)
    if actual != source.sha256:
        wheel.rename(wheel.with_suffix(".rejected"))
        raise DatasetError(f"{source.name} wheel hash mismatch: {actual}")
    return wheel


def ensure_meteva(cache_dir: Path) -> Path:
    """The pinned meteva wheel (see :func:`ensure_wheel`)."""
    return ensure_wheel(METEVA, cache_dir)


def ensure_vega(cache_dir: Path) -> Path:
    """The pinned vega_datasets wheel (see :func:`ensure_wheel`)."""
    return ensure_wheel(VEGA, cache_dir)


@dataclass(frozen=True)
class Wheels:
    """The checked source wheels, by what they hold."""

    meteva: Path
    vega: Path

    def read(self, wheel: Path, member: str) -> bytes:
        """One file of a wheel, read from the zip."""
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)


def ensure_all(cache_dir: Path) -> Wheels:
    """Every pinned source, fetched and checked."""
    return Wheels(ensure_meteva(cache_dir), ensure_vega(cache_dir))


def cached(cache_dir: Path, key: str, derive: Callable[[], Any],
           replaces: str | None = None) -> Any:
    """``derive()``, kept on disk under ``key`` and the pinned source hashes.

    The file name carries the hashes of every pinned source and the
    derivation format, so a new source or derivation never reads an old
    result. A cache file that does not decode is derived again. A newly
    written file removes the files named ``<replaces>-*.msgpack``: the
    results of older derivations of the same thing.
    """
    tag = hashlib.sha256(
        "|".join([str(DERIVED_FORMAT), key] + [s.sha256 for s in SOURCES]).encode()
    ).hexdigest()[:16]
    path = cache_dir / "derived" / f"{key}-{tag}.msgpack"
    if path.exists():
        try:
            return msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException):
            logger.warning("derived cache %s unreadable; deriving again", path.name)
    value = derive()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(msgpack.packb(value, use_bin_type=True))
    partial.replace(path)
    if replaces is not None:
        for old in path.parent.glob(f"{replaces}-*.msgpack"):
            if old != path:
                old.unlink(missing_ok=True)
    return value


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
