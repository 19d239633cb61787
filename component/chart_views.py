"""The chart and table products: daily series, heat map, colour scales, tables.

Same contract as :mod:`map_views`: draw into the body box, return the
text for the right of the title bar.
"""

from __future__ import annotations

from typing import Any

from . import charts, tables
from .paint import Box, Painter, Theme
from .views import View

SCALE_ROW = 46


def _year(view: View, payload: Any) -> int:
    view.periods = [int(y) for y in payload.get("years", [])]
    if view.period not in view.periods:
        view.period = int(payload["year"])
    return int(view.period)


def _series(payload: Any, year: int) -> tuple[list[str], list[charts.Series]]:
    dates = list(payload["dates"])
    start, end = charts.year_slice(dates, year)
    scale = float(payload.get("scale", 1) or 1)
    series = []
    for raw in payload["series"]:
        values = raw["values"][start:end]
        series.append(
            charts.Series(
                str(raw["label"]), [None if v is None else v / scale for v in values]
            )
        )
    return dates[start:end], series


def draw_series(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    year = _year(view, payload)
    dates, series = _series(payload, year)
    values = [v for s in series for v in s.values if v is not None]
    low = 0.0 if payload["style"] != "band" else min(values)
    plot_box = Box(body.x + 46, body.y + 34, body.w - 62, body.h - 60)
    plot = charts.axes(p, plot_box, year, low, max(values), t)
    _plot_series(p, plot, payload["style"], dates, series)
    _series_facts(p, body, dates, series, t)
    return f"{payload.get('place', '')} {year} · ◀ ▶ to change"


def _plot_series(
    p: Painter,
    plot: charts.Axes,
    style: str,
    dates: list[str],
    series: list[charts.Series],
) -> None:
    colours = charts.SERIES_COLOURS
    if style == "band" and len(series) == 2:
        band = charts.band_path(plot, dates, series[0].values, series[1].values)
        p.path(band, fill="rgba(208, 69, 47, 0.15)")
    for k, s in enumerate(series):
        if style == "bars":
            p.path(charts.bars_path(plot, dates, s.values), fill=colours[1])
        else:
            p.path(
                charts.line_path(plot, dates, s.values), stroke=colours[k], width=1.2
            )


def _series_facts(
    p: Painter, body: Box, dates: list[str], series: list[charts.Series], t: Theme
) -> None:
    x = body.x + 46
    for k, s in enumerate(series):
        known = [(v, d) for v, d in zip(s.values, dates, strict=True) if v is not None]
        if not known:
            continue
        # max() and min() keep the first of equal values: the earliest day.
        lowest = "minimum" in s.label
        pick = min if lowest else max
        top, top_day = pick(known, key=lambda vd: vd[0])
        mean = sum(v for v, _ in known) / len(known)
        word = "lowest" if lowest else "highest"
        text = f"{s.label}: mean {mean:.1f}, {word} {top:.1f} on {top_day}"
        if "precipitation" in s.label:
            text += f", total {sum(v for v, _ in known):.1f}"
        p.rect(Box(x, body.y + 10 + 16 * k, 10, 3), charts.SERIES_COLOURS[k])
        p.text(text, x + 16, body.y + 11 + 16 * k, t.text, 11)


def draw_heatmap(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    scale = float(payload.get("scale", 1) or 1)
    rows = [[None if v is None else v / scale for v in row] for row in payload["rows"]]
    box = Box(body.x + 8, body.y + 8, body.w - 16, body.h - 16)
    charts.heatmap(p, box, rows, payload["row_labels"], payload["col_labels"], t)
    return f"{payload.get('hours', 0)} h"


def draw_scales(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    scales = list(payload["scales"])
    view.rows = len(scales)
    view.page_rows = max(1, int((body.h - 30) // SCALE_ROW))
    view.first = tables.clamp_first(view.first, len(scales), view.page_rows)
    y = body.y + 12
    shown = scales[view.first : view.first + view.page_rows]
    for scale in shown:
        p.text(
            f"{scale['title']} · {scale['file']}",
            body.x + 14,
            y,
            t.text,
            12,
            weight="bold",
        )
        bar = Box(body.x + 14, y + 10, body.w - 28, 12)
        charts.scale_bar(p, bar, scale["stops"], t)
        view.target(Box(body.x, y - 8, body.w, SCALE_ROW), str(scale["name"]))
        y += SCALE_ROW
    last = view.first + len(shown)
    p.text(
        f"{view.first + 1}–{last} of {len(scales)} · scroll for more",
        body.x + 14,
        body.y + body.h - 12,
        t.muted,
        11,
    )
    return f"{len(scales)} scales"


def draw_table(p: Painter, payload: Any, body: Box, view: View, t: Theme) -> str:
    rows = list(payload["rows"])
    if view.rows == 0 and int(payload.get("page", 1)) > 1:
        view.first = (int(payload["page"]) - 1) * int(payload.get("page_rows", 10))
    view.rows = len(rows)
    box = Box(body.x + 8, body.y + 6, body.w - 16, body.h - 12)
    columns = tables.even_columns(payload["columns"])
    view.first = tables.clamp_first(view.first, len(rows), tables.rows_that_fit(box))
    view.page_rows = tables.draw_table(p, box, columns, rows, view.first, t)
    for k in range(view.page_rows):
        if view.first + k < len(rows):
            y = box.y + tables.ROW_HEIGHT * (k + 1) + 4
            row = rows[view.first + k]
            view.target(
                Box(box.x, y, box.w, tables.ROW_HEIGHT),
                str(row[2 if payload["product"] == "seattle-extremes" else 0]),
            )
    return f"{len(rows)} rows"
