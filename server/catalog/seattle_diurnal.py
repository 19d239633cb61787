"""seattle-diurnal: the mean temperature of each hour of the day, by month.

From the hourly 2010 temperatures of ``seattle-temps.csv`` (°F, converted
to °C as (F − 32) × 5/9): for each month and each hour, the mean over the
month's days, as a month × hour table drawn as a heat map.
"""

from __future__ import annotations

from ..datasets import Wheels
from . import seattle
from .spec import Derived, Payload, ProductSpec, Query


def celsius(fahrenheit: float) -> float:
    return (fahrenheit - 32) * 5 / 9


def derive(wheels: Wheels) -> Derived:
    sums = [[0.0] * 24 for _ in range(12)]
    counts = [[0] * 24 for _ in range(12)]
    hours = seattle.read_hours(wheels)
    for stamp, fahrenheit in hours:
        month, hour = int(stamp[5:7]) - 1, int(stamp[11:13])
        sums[month][hour] += celsius(fahrenheit)
        counts[month][hour] += 1
    return {
        "year": int(hours[0][0][:4]),
        "means": [
            [round(10 * s / c) if c else None for s, c in zip(srow, crow, strict=True)]
            for srow, crow in zip(sums, counts, strict=True)
        ],
        "hours": sum(sum(row) for row in counts),
    }


def build(derived: Derived, query: Query) -> Payload:
    return {
        "product": "seattle-diurnal",
        "kind": "heatmap",
        "title": f"气温日变化 Mean temperature by hour, {seattle.PLACE} "
        f"{derived['year']}",
        "rows": derived["means"],
        "scale": 10,
        "units": "°C",
        "row_labels": [f"{m:02d}" for m in range(1, 13)],
        "col_labels": [f"{h:02d}" for h in range(24)],
        "hours": derived["hours"],
        "source": seattle.SOURCE,
    }


SPEC = ProductSpec(
    "seattle-diurnal",
    "Mean temperature by hour and month, Seattle 2010",
    1,
    seattle.SOURCE,
    (seattle.HOURLY_FILE,),
    derive,
    build,
)
