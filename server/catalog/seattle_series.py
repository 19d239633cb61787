"""seattle-temperature, seattle-precipitation, seattle-wind: daily time series.

One module for the three because they differ only in the columns shown;
each product serves every day of 2012-2015 (``year`` picks the year shown
first), values in tenths so the numbers are exactly the file's.
"""

from __future__ import annotations

from collections.abc import Callable

from ..datasets import Wheels
from . import seattle
from .spec import Derived, Payload, ProductSpec, Query, int_param

Column = tuple[str, str, Callable[[seattle.Day], float]]

TEMPERATURE: list[Column] = [
    ("temp_max", "daily maximum °C", lambda d: d.temp_max),
    ("temp_min", "daily minimum °C", lambda d: d.temp_min),
]
PRECIPITATION: list[Column] = [
    ("precipitation", "precipitation mm", lambda d: d.precipitation),
]
WIND: list[Column] = [("wind", "mean wind speed m/s", lambda d: d.wind)]


def _deriver(columns: list[Column]) -> Callable[[Wheels], Derived]:
    def derive(wheels: Wheels) -> Derived:
        days = seattle.read_days(wheels)
        return {
            "dates": [d.date for d in days],
            "series": [
                {
                    "name": name,
                    "label": label,
                    "values": [seattle.tenths(get(d)) for d in days],
                }
                for name, label, get in columns
            ],
        }

    return derive


def _builder(
    product_id: str, title: str, style: str
) -> Callable[[Derived, Query], Payload]:
    def build(derived: Derived, query: Query) -> Payload:
        years = sorted({int(d[:4]) for d in derived["dates"]})
        year = int_param(query, "year", years[-1], years[0], years[-1])
        return {
            "product": product_id,
            "kind": "series",
            "style": style,
            "title": title,
            "place": seattle.PLACE,
            "year": year,
            "years": years,
            "scale": 10,
            **derived,
            "source": seattle.SOURCE,
        }

    return build


def _spec(
    product_id: str, name: str, title: str, style: str, columns: list[Column]
) -> ProductSpec:
    return ProductSpec(
        product_id,
        name,
        1,
        seattle.SOURCE,
        (seattle.DAILY_FILE,),
        _deriver(columns),
        _builder(product_id, title, style),
    )


TEMPERATURE_SPEC = _spec(
    "seattle-temperature",
    "Daily temperature, Seattle 2012-2015",
    "逐日气温 Daily temperature",
    "band",
    TEMPERATURE,
)
PRECIPITATION_SPEC = _spec(
    "seattle-precipitation",
    "Daily precipitation, Seattle 2012-2015",
    "逐日降水 Daily precipitation",
    "bars",
    PRECIPITATION,
)
WIND_SPEC = _spec(
    "seattle-wind",
    "Daily wind speed, Seattle 2012-2015",
    "逐日风速 Daily wind speed",
    "line",
    WIND,
)
