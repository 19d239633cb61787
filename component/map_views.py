"""The map products: stations, station card, terrain, rivers, density, 500 hPa.

Each ``draw_*`` gets the painter, the payload, the body box (between the
title bar and the footer), the view state and the theme, and returns the
text for the right of the title bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import maps, tables
from .paint import Box, Painter, Theme, ramp, rgb_hex
from .views import View, split

# Station altitude colours (metres), from ColorBrewer's Spectral.
ALTITUDE_STOPS = (
    (0.0, (43, 131, 186)),
    (100.0, (171, 221, 164)),
    (300.0, (255, 255, 191)),
    (600.0, (253, 174, 97)),
    (1200.0, (215, 25, 28)),
)
NO_ALTITUDE = "#9a9a9a"
DENSITY_STOPS = (
    (0.0, (255, 247, 236)),
    (1.0, (253, 212, 158)),
    (2.0, (252, 141, 89)),
    (4.0, (215, 48, 31)),
    (7.0, (127, 0, 0)),
)
Z500_STOPS = (
    (500.0, (49, 54, 149)),
    (520.0, (69, 117, 180)),
    (540.0, (116, 173, 209)),
    (556.0, (224, 243, 248)),
    (568.0, (254, 224, 144)),
    (580.0, (253, 174, 97)),
    (588.0, (215, 48, 39)),
    (594.0, (127, 0, 38)),
)
STATION_COLUMNS = (
    tables.Column("id 站号", 0.0),
    tables.Column("county 县", 0.17),
    tables.Column("lon", 0.52, "right"),
    tables.Column("lat", 0.70, "right"),
    tables.Column("alt m", 0.88, "right"),
)


def altitude_colour(alt: float | None) -> str:
    rgb = ramp(alt, ALTITUDE_STOPS)
    return NO_ALTITUDE if rgb is None else rgb_hex(rgb)


def _bounds_of(points: Sequence[tuple[float, float]], pad: float) -> maps.Bounds:
    lons = [p[0] for p in points] or [0.0]
    lats = [p[1] for p in points] or [0.0]
    return min(lons) - pad, min(lats) - pad, max(lons) + pad, max(lats) + pad


def _station_rows(payload: Any) -> list[list[Any]]:
    columns = list(payload["columns"])
    pick = [columns.index(c) for c in ("id", "county", "lon", "lat", "alt")]
    return [[row[k] for k in pick] for row in payload["rows"]]


def draw_stations(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    rows = _station_rows(payload)
    map_box, table_box = split(body, 0.55)
    proj = maps.fitted(_bounds_of([(r[2], r[3]) for r in rows], 0.25), map_box)
    maps.graticule(p, proj, t)
    for sid, _, lon, lat, alt in sorted(rows, key=lambda r: r[4] or 0.0):
        x, y = proj.xy(lon, lat)
        p.dot(x, y, 3.2, altitude_colour(alt))
        view.target(Box(x - 4, y - 4, 8, 8), str(sid))
    _table(
        p,
        table_box,
        STATION_COLUMNS,
        [_station_cells(r) for r in rows],
        view,
        t,
        lambda pt, row, x, y: pt.dot(x, y, 3, altitude_colour(_alt(row))),
    )
    return f"{len(rows)} stations"


def _alt(row: Sequence[Any]) -> float | None:
    return None if row[4] == "—" else float(row[4])


def _station_cells(row: Sequence[Any]) -> list[str]:
    sid, county, lon, lat, alt = row
    return [
        str(sid),
        str(county),
        f"{lon:.2f}",
        f"{lat:.2f}",
        "—" if alt is None else f"{alt:.1f}",
    ]


def _table(
    p: Painter,
    box: Box,
    columns: Sequence[tables.Column],
    rows: Sequence[Sequence[Any]],
    view: View,
    t: Theme,
    marker: Any = None,
) -> None:
    view.rows = len(rows)
    view.first = tables.clamp_first(view.first, len(rows), tables.rows_that_fit(box))
    view.page_rows = tables.draw_table(p, box, columns, rows, view.first, t, marker)
    for k in range(view.page_rows):
        if view.first + k < len(rows):
            y = box.y + tables.ROW_HEIGHT * (k + 1) + 4
            view.target(
                Box(box.x, y, box.w, tables.ROW_HEIGHT), str(rows[view.first + k][0])
            )


def draw_card(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    station = payload["station"]
    relief = maps.GridData.from_payload(payload["relief"])
    # Side by side at any width: the fields need little room, the relief a square.
    left_w = max(260.0, body.w * 0.46)
    left = Box(body.x, body.y, left_w, body.h)
    right = Box(body.x + left_w, body.y, body.w - left_w, body.h)
    _card_fields(p, left, station, t)
    proj = maps.fitted(relief.bounds, right)
    maps.raster(p, proj, relief, maps.terrain_colour)
    maps.graticule(p, proj, t, 0.1)
    for _, sid, _, lon, lat in payload["neighbours"]:
        x, y = proj.xy(lon, lat)
        if right.contains(x, y):
            p.dot(x, y, 3, t.text)
            view.target(Box(x - 5, y - 5, 10, 10), str(sid))
    _neighbours(p, left, payload["neighbours"], view, t)
    x, y = proj.xy(station["lon"], station["lat"])
    p.dot(x, y, 5, t.error)
    p.text(str(station["id"]), x + 8, y - 8, t.text, 12, weight="bold")
    return "national station" if station.get("national") else "regional station"


def _card_fields(p: Painter, box: Box, station: Any, t: Theme) -> None:
    dem = station.get("dem_m")
    alt = station.get("alt")
    fields = [
        ("station 站号", str(station["id"])),
        ("province 省", str(station["province"])),
        ("county / place 县", str(station["county"])),
        ("longitude", f"{station['lon']:.2f}°E"),
        ("latitude", f"{station['lat']:.2f}°N"),
        ("altitude (catalogue)", "—" if alt is None else f"{alt:.1f} m"),
        ("1 km DEM under it", "—" if dem is None else f"{dem} m"),
    ]
    y = box.y + 20
    for label, value in fields:
        p.text(label, box.x + 14, y, t.muted, 12)
        p.text(value, box.x + box.w - 14, y, t.text, 13, "right", "bold")
        y += 26


def _neighbours(
    p: Painter, box: Box, near: Sequence[Any], view: View, t: Theme
) -> None:
    y = box.y + 20 + 26 * 7 + 8
    p.text("nearest stations 邻近站", box.x + 14, y, t.muted, 12, weight="bold")
    for dist, sid, county, _, _ in near:
        y += 22
        if y > box.y + box.h - 10:
            break
        p.text(str(sid), box.x + 14, y, t.text, 12)
        p.text(str(county)[:12], box.x + 74, y, t.text, 12)
        p.text(f"{dist} km", box.x + box.w - 14, y, t.muted, 12, "right")
        view.target(Box(box.x, y - 11, box.w, 22), str(sid))


def draw_terrain(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    grid = maps.GridData.from_payload(payload["grid"])
    facts = payload["facts"]
    map_box = Box(body.x, body.y, body.w, body.h - 56)
    proj = maps.fitted(grid.bounds, map_box)
    outline = maps.rings_path(proj, payload["outline"])
    p.ctx.globalAlpha = 0.35
    maps.raster(p, proj, grid, maps.terrain_colour)
    p.ctx.globalAlpha = 1.0
    p.clip(outline)
    maps.raster(p, proj, grid, maps.terrain_colour)
    p.ctx.restore()
    p.path(outline, stroke=t.outline, width=1.5)
    maps.graticule(p, proj, t)
    x, y = proj.xy(facts["max_lon"], facts["max_lat"])
    p.dot(x, y, 4, t.error)
    p.text(f"▲ {facts['max_m']} m", x + 7, y, t.text, 11, weight="bold")
    legend = Box(body.x + 40, body.y + body.h - 44, min(260, body.w - 120), 10)
    maps.colour_bar(p, legend, maps.TERRAIN_STOPS[:-1], [0, 300, 1000], "m", t)
    p.text(
        f"mean {facts['mean_m']} m · {facts['above_500_pct']}% above 500 m · "
        f"{facts['cells']} cells",
        body.x + 40,
        body.y + body.h - 12,
        t.muted,
        11,
    )
    return f"highest cell {facts['max_m']} m"


def draw_rivers(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    map_box, table_box = split(body)
    lon0, lat0, lon1, lat1 = payload["box"]
    proj = maps.fitted((lon0, lat0, lon1, lat1), map_box)
    p.rect(proj.area((lon0, lat0, lon1, lat1)), t.land)
    maps.clip_to(p, proj)
    p.path(maps.rings_path(proj, payload["provinces"], close=False), stroke=t.muted)
    p.path(maps.rings_path(proj, payload["outline"]), stroke=t.outline, width=1.6)
    for kind in ("river", "lake", "reservoir", "other", "island"):
        rings = [
            r for f in payload["features"] if f["class"] == kind for r in f["rings"]
        ]
        colour = t.land if kind == "island" else t.water
        p.path(maps.rings_path(proj, rings), fill=colour, stroke=colour, width=0.8)
    p.ctx.restore()
    maps.graticule(p, proj, t)
    columns = tables.even_columns(payload["columns"], 2)
    _table(p, table_box, columns, payload["rows"], _paged(view, payload), t)
    return f"{len(payload['features'])} polygons"


def _paged(view: View, payload: Any) -> View:
    if view.rows == 0 and payload.get("page", 1) > 1:
        view.first = (int(payload["page"]) - 1) * int(payload.get("page_rows", 10))
    return view


def draw_density(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    map_box, table_box = split(body)
    size = float(payload["cell_deg"])
    proj = maps.fitted((109.5, 20.0, 117.5, 25.7), map_box)
    for lon, lat, _, density in payload["cells"]:
        rgb = ramp(density, DENSITY_STOPS) or (0, 0, 0)
        p.rect(proj.area((lon, lat, lon + size, lat + size)), rgb_hex(rgb))
    p.path(
        maps.rings_path(proj, payload["counties"], close=False),
        stroke=t.grid,
        width=0.6,
    )
    p.path(maps.rings_path(proj, payload["outline"]), stroke=t.outline, width=1.6)
    for lon, lat in payload["points"]:
        x, y = proj.xy(lon, lat)
        p.rect(Box(x - 1, y - 1, 2, 2), t.text)
    maps.graticule(p, proj, t)
    legend = Box(map_box.x + 44, map_box.y + map_box.h - 12, 140, 8)
    maps.colour_bar(p, legend, DENSITY_STOPS, [0, 2, 4, 7], "per 1000 km²", t)
    _table(
        p,
        table_box,
        tables.even_columns(payload["columns"]),
        payload["rows"],
        _paged(view, payload),
        t,
    )
    total, area = payload["total"], payload["area_km2"]
    return f"{total} stations · {area:,} km²"


def draw_z500(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    view.periods = list(range(1, 13))
    month = view.period if view.period in view.periods else int(payload["month"])
    view.period = month
    grid = maps.GridData.from_payload(payload["grid"], payload["months"][month - 1])
    map_box = Box(body.x, body.y, body.w, body.h - 30)
    proj = maps.fitted(grid.bounds, map_box)
    maps.raster(p, proj, grid, lambda v: ramp(v, Z500_STOPS))
    maps.clip_to(p, proj)
    p.path(
        maps.rings_path(proj, payload["coast"], close=False),
        stroke="#3a3a3a",
        width=0.8,
    )
    p.path(
        maps.rings_path(proj, payload["border"], close=False),
        stroke="#7a1f1f",
        width=1.0,
    )
    known = [v for v in grid.values if v is not None]
    low, high = min(known) / grid.scale, max(known) / grid.scale
    # Only levels the month's field reaches: each level is a pass over the grid.
    for level in (k for k in range(500, 600, 4) if low <= k <= high):
        colour = "#5a0000" if level == 588 else "rgba(20, 20, 40, 0.6)"
        segments = maps.contour_segments(grid, float(level))
        p.path(
            maps.segments_path(proj, segments),
            stroke=colour,
            width=2.2 if level == 588 else 0.7,
        )
    p.ctx.restore()
    maps.graticule(p, proj, t, 10.0)
    _z500_legend(p, body, grid, month, t)
    return f"month {month:02d} · ◀ ▶ to change"


def _z500_legend(
    p: Painter, body: Box, grid: maps.GridData, month: int, t: Theme
) -> None:
    values = [
        v
        for j in range(grid.ny)
        for i in range(grid.nx)
        if (v := grid.value(i, j)) is not None
    ]
    bar_w = max(120.0, min(240.0, body.w - 420))
    legend = Box(body.x + 40, body.y + body.h - 22, bar_w, 8)
    maps.colour_bar(p, legend, Z500_STOPS, [500, 556, 588], "dagpm", t)
    p.text(
        f"range {min(values):.1f}–{max(values):.1f} dagpm · contours every 4, 588 bold",
        legend.x + legend.w + 50,
        legend.y + 4,
        t.muted,
        11,
    )
