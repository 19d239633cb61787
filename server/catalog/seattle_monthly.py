"""seattle-monthly: a monthly climate summary table of Seattle, by year.

For every month of 2012-2015, from the daily rows: mean daily maximum and
minimum, the month's highest maximum and lowest minimum, total
precipitation, days with precipitation, mean wind speed and sunny days.
"""

from __future__ import annotations

from ..datasets import Wheels
from . import seattle
from .spec import Derived, Payload, ProductSpec, Query, int_param

# Mean daily maximum and minimum (°C), highest maximum and lowest minimum
# (°C), precipitation (mm), days with precipitation, mean wind (m/s), days
# of sun.
COLUMNS = ["month", "Tmax", "Tmin", "high", "low", "mm", "wet", "wind", "sun"]


def _summary(month: str, days: list[seattle.Day]) -> list[object]:
    n = len(days)
    return [
        month,
        round(sum(d.temp_max for d in days) / n, 1),
        round(sum(d.temp_min for d in days) / n, 1),
        max(d.temp_max for d in days),
        min(d.temp_min for d in days),
        round(sum(d.precipitation for d in days), 1),
        sum(1 for d in days if d.precipitation > 0),
        round(sum(d.wind for d in days) / n, 1),
        sum(1 for d in days if d.weather == "sun"),
    ]


def derive(wheels: Wheels) -> Derived:
    by_month: dict[str, list[seattle.Day]] = {}
    for day in seattle.read_days(wheels):
        by_month.setdefault(day.date[:7], []).append(day)
    return [_summary(month, days) for month, days in sorted(by_month.items())]


def build(rows: Derived, query: Query) -> Payload:
    years = sorted({int(r[0][:4]) for r in rows})
    year = int_param(query, "year", years[-1], years[0], years[-1])
    return {
        "product": "seattle-monthly",
        "kind": "table",
        "title": f"月气候概况 Monthly climate summary, {seattle.PLACE} {year}",
        "columns": COLUMNS,
        "rows": [r for r in rows if r[0].startswith(str(year))],
        "year": year,
        "years": years,
        "source": seattle.SOURCE,
    }


SPEC = ProductSpec(
    "seattle-monthly",
    "Monthly climate summary, Seattle",
    2,
    seattle.SOURCE,
    (seattle.DAILY_FILE,),
    derive,
    build,
)
