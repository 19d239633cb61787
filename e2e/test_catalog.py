"""All thirteen products on the demo dashboard, from one licence, in Chromium.

Each component is checked for a value that this test reads itself from the
source files in the wheels (text, CSV, shapefile headers, HDF5 through
h5py), not through the catalogue's code. First-render times per product
are printed at the end of the run.
"""

from __future__ import annotations

import csv
import io
import statistics
import struct
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import h5py
import pytest

from . import harness
from .harness import Demo, poll, record_timing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PRODUCTS = (
    "gd-stations",
    "gd-station-card",
    "gd-terrain",
    "gd-rivers",
    "gd-station-density",
    "cn-z500-climate",
    "cma-colour-scales",
    "seattle-temperature",
    "seattle-precipitation",
    "seattle-wind",
    "seattle-monthly",
    "seattle-extremes",
    "seattle-diurnal",
)
READY_TIMEOUT_S = 240
SLOTS = "Array.from(document.querySelectorAll('.xinfeng-slot'))"
STATES = (
    f"{SLOTS}.map(s => [s.dataset.product, s.dataset.startedMs || null,"
    " s.dataset.readyMs || null, s.dataset.errorCode || null])"
)


@pytest.fixture(scope="module")
def dashboard(browser: Any, demo: Demo) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo.host_url + "/")

    def settled() -> list[Any] | None:
        states = page.evaluate(STATES)
        return states if all(s[2] or s[3] for s in states) else None

    states = poll(settled, READY_TIMEOUT_S, every_s=0.25)
    for product, started, ready, _ in states:
        if ready:
            record_timing(
                f"dashboard first render {product}", float(ready) - float(started)
            )
    yield page
    page.close()


def component_texts(page: Any) -> list[str]:
    """Every string the components on ``page`` drew in their last frames."""
    shared = getattr(harness, "component_texts", None)
    if shared is not None:
        return list(shared(page))
    page.wait_for_timeout(100)
    texts: list[str] = []
    for worker in page.workers:
        if worker.url.endswith(harness.WORKER_PATH):
            texts += harness.frame_text(worker)
    return texts


def test_dashboard_shows_all_thirteen_products_from_one_licence(
    dashboard: Any, demo: Demo
) -> None:
    states = dashboard.evaluate(STATES)
    licences = set(dashboard.evaluate(f"{SLOTS}.map(s => s.dataset.license)"))

    assert [s[0] for s in states] == list(PRODUCTS)
    assert licences == {demo.license_id}
    assert {s[0]: s[3] for s in states if s[3]} == {}


# -- values read independently from the sources ---------------------------------


def _member(demo: Demo, wheel: str, name: str) -> bytes:
    with zipfile.ZipFile(next(demo.cache_dir.glob(wheel))) as zf:
        return zf.read(name)


def _meteva(demo: Demo, name: str) -> bytes:
    return _member(demo, "meteva-*.whl", "meteva/resources/" + name)


def _days(demo: Demo, year: str) -> list[dict[str, str]]:
    text = _member(
        demo, "vega_datasets-*.whl", "vega_datasets/_data/seattle-weather.csv"
    ).decode()
    return [d for d in csv.DictReader(io.StringIO(text)) if d["date"][:4] == year]


def _series_line(
    days: list[dict[str, str]], column: str, label: str, word: str = "highest"
) -> str:
    values = [(float(d[column]), d["date"].replace("/", "-")) for d in days]
    pick = min if word == "lowest" else max
    top, date = pick(values, key=lambda v: v[0])
    mean = statistics.fmean(v for v, _ in values)
    return f"{label}: mean {mean:.1f}, {word} {top:.1f} on {date}"


def expect_stations(demo: Demo) -> list[str]:
    lines = _meteva(demo, "stations/station_id_pro_county.txt").decode().splitlines()
    count = sum(1 for line in lines if line.split()[1:2] in (["广东"], ["广东省"]))
    return [f"{count} stations", "57988", "乐昌"]


def expect_card(demo: Demo) -> list[str]:
    with h5py.File(io.BytesIO(_meteva(demo, "stations/dem_0.00833.nc"))) as f:
        j = abs(f["lat"][:] - 23.22).argmin()
        i = abs(f["lon"][:] - 113.48).argmin()
        height = int(f["data0"][0, 0, 0, 0, j, i])
    return ["59287", f"{height} m"]


def expect_terrain(demo: Demo) -> list[str]:
    tokens = _meteva(demo, "height_oy.txt").split()
    dlon, dlat, lon0, _, lat0, _, nx = (float(t) for t in tokens[9:16])
    at = 22 + round((24.9 - lat0) / dlat) * int(nx) + round((113.0 - lon0) / dlon)
    return [f"▲ {round(float(tokens[at]))} m"]


def expect_rivers(demo: Demo) -> list[str]:
    data = _meteva(demo, "maps/hyd1_4p.shp")
    count, at = 0, 100
    while at < len(data):
        _, words = struct.unpack(">ii", data[at : at + 8])
        x0, y0, x1, y1 = struct.unpack("<4d", data[at + 12 : at + 44])
        count += not (x1 < 108.0 or x0 > 117.5 or y1 < 20.0 or y0 > 26.0)
        at += 8 + 2 * words
    return [f"{count} polygons", "river", "21012"]


def expect_density(demo: Demo) -> list[str]:
    return [expect_stations(demo)[0] + " · "]


def expect_z500(demo: Demo) -> list[str]:
    with h5py.File(io.BytesIO(_meteva(demo, "z500_cli.nc"))) as f:
        lat, lon, hours = f["lat"][:], f["lon"][:], f["time"][:]
        j = (lat >= 0) & (lat <= 60)
        i = (lon >= 70.5) & (lon <= 150)
        july = (hours >= 4368) & (hours < 5112)  # hours since 2020-01-01
        data = f["data0"][0, 0, :, 0, :, :][july][:, j][:, :, i] * 0.1
    dagpm = data.mean(axis=0) / 9.80665 / 10
    return [f"range {dagpm.min():.1f}–{dagpm.max():.1f} dagpm"]


def expect_scales(demo: Demo) -> list[str]:
    text = _meteva(demo, "colormaps/color_rain_24h.txt").decode()
    stops = [line.split()[0] for line in text.splitlines() if line.strip()]
    return ["24 h precipitation (mm) · color_rain_24h.txt", *stops[1:5]]


def expect_temperature(demo: Demo) -> list[str]:
    days = _days(demo, "2015")
    return [
        _series_line(days, "temp_max", "daily maximum °C"),
        _series_line(days, "temp_min", "daily minimum °C", "lowest"),
    ]


def expect_precipitation(demo: Demo) -> list[str]:
    days = _days(demo, "2015")
    line = _series_line(days, "precipitation", "precipitation mm")
    return [f"{line}, total {sum(float(d['precipitation']) for d in days):.1f}"]


def expect_wind(demo: Demo) -> list[str]:
    return [_series_line(_days(demo, "2015"), "wind", "mean wind speed m/s")]


def expect_monthly(demo: Demo) -> list[str]:
    july = [d for d in _days(demo, "2015") if d["date"][5:7] == "07"]
    return [
        "2015-07",
        str(round(statistics.fmean(float(d["temp_max"]) for d in july), 1)),
    ]


def expect_extremes(demo: Demo) -> list[str]:
    days = _days(demo, "2012") + _days(demo, "2013") + _days(demo, "2014")
    days += _days(demo, "2015")
    hottest = max(days, key=lambda d: float(d["temp_max"]))
    return [hottest["date"].replace("/", "-"), str(float(hottest["temp_max"]))]


def expect_diurnal(demo: Demo) -> list[str]:
    text = _member(
        demo, "vega_datasets-*.whl", "vega_datasets/_data/seattle-temps.csv"
    ).decode()
    july_3pm = [
        float(h["temp"])
        for h in csv.DictReader(io.StringIO(text))
        if h["date"][5:7] == "07" and h["date"][11:13] == "15"
    ]
    return [f"{(statistics.fmean(july_3pm) - 32) * 5 / 9:.1f}"]


EXPECTED: dict[str, Callable[[Demo], list[str]]] = {
    "gd-stations": expect_stations,
    "gd-station-card": expect_card,
    "gd-terrain": expect_terrain,
    "gd-rivers": expect_rivers,
    "gd-station-density": expect_density,
    "cn-z500-climate": expect_z500,
    "cma-colour-scales": expect_scales,
    "seattle-temperature": expect_temperature,
    "seattle-precipitation": expect_precipitation,
    "seattle-wind": expect_wind,
    "seattle-monthly": expect_monthly,
    "seattle-extremes": expect_extremes,
    "seattle-diurnal": expect_diurnal,
}


def _shows(text: str, expected: str) -> bool:
    """Whether a drawn string is the expected one, or starts with it as a phrase."""
    if text == expected:
        return True
    prefix = expected if expected.endswith(" ") else expected + " "
    return text.startswith(prefix)


@pytest.mark.parametrize("product", PRODUCTS)
def test_component_shows_a_value_from_its_source(
    dashboard: Any, demo: Demo, product: str
) -> None:
    expected = EXPECTED[product](demo)
    texts = component_texts(dashboard)

    missing = [e for e in expected if not any(_shows(t, e) for t in texts)]

    assert not missing, f"{product} did not draw {missing}"


def test_every_component_carries_the_licence_watermark(
    dashboard: Any, demo: Demo
) -> None:
    texts = component_texts(dashboard)
    marks = {t for t in texts if t.startswith(f"licence {demo.license_id} · trace ")}

    # One visible mark line per component frame, each with its own trace id.
    assert len(marks) >= len(PRODUCTS)
