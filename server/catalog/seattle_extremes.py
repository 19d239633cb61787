"""seattle-extremes: the record days of 2012-2015 in Seattle.

The ten hottest days (daily maximum), coldest nights (daily minimum),
wettest days (precipitation) and windiest days (mean wind), ties broken
by the earlier date. ``kind`` narrows the table to one list.
"""

from __future__ import annotations

from collections.abc import Callable

from ..datasets import Wheels
from . import seattle
from .spec import Derived, Payload, ProductSpec, Query, choice_param, first_page

TOP = 10
ROWS_PER_PAGE = 10
KINDS: dict[str, tuple[str, Callable[[seattle.Day], float], bool]] = {
    "hot": ("hottest (max °C)", lambda d: d.temp_max, True),
    "cold": ("coldest (min °C)", lambda d: d.temp_min, False),
    "wet": ("wettest (mm)", lambda d: d.precipitation, True),
    "windy": ("windiest (m/s)", lambda d: d.wind, True),
}
COLUMNS = ["list", "rank", "date", "value", "weather"]


def _top(days: list[seattle.Day], kind: str) -> list[list[object]]:
    label, value, highest = KINDS[kind]
    ranked = sorted(days, key=lambda d: (-value(d) if highest else value(d), d.date))
    return [
        [kind, rank, d.date, value(d), d.weather]
        for rank, d in enumerate(ranked[:TOP], start=1)
    ]


def derive(wheels: Wheels) -> Derived:
    days = seattle.read_days(wheels)
    return [row for kind in KINDS for row in _top(days, kind)]


def build(rows: Derived, query: Query) -> Payload:
    kind = choice_param(query, "kind", "all", set(KINDS) | {"all"})
    chosen = [r for r in rows if kind in ("all", r[0])]
    labelled = [[KINDS[r[0]][0], *r[1:]] for r in chosen]
    return {
        "product": "seattle-extremes",
        "kind": "table",
        "title": f"极值 Record days, {seattle.PLACE} 2012-2015",
        "columns": COLUMNS,
        "rows": labelled,
        **first_page(labelled, query, ROWS_PER_PAGE),
        "source": seattle.SOURCE,
    }


SPEC = ProductSpec(
    "seattle-extremes",
    "Record days, Seattle 2012-2015",
    2,
    seattle.SOURCE,
    (seattle.DAILY_FILE,),
    derive,
    build,
)
