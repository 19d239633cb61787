"""Daily and hourly weather observed in Seattle, from the vega_datasets wheel.

``seattle-weather.csv``: one row per day, 2012-01-01 to 2015-12-31, with
precipitation (mm), daily maximum and minimum temperature (°C), mean wind
speed (m/s) and a weather word (sun, rain, drizzle, fog, snow).
``seattle-temps.csv``: hourly temperature in °F through 2010. Both are NOAA
observations (public domain) transformed by the vega_datasets authors.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from ..datasets import VEGA_VERSION, Wheels

DAILY_FILE = "vega_datasets/_data/seattle-weather.csv"
HOURLY_FILE = "vega_datasets/_data/seattle-temps.csv"
SOURCE = f"NOAA via vega_datasets {VEGA_VERSION}"
PLACE = "Seattle, WA"


@dataclass(frozen=True)
class Day:
    """One row of seattle-weather.csv."""

    date: str  # ISO 8601, as 2012-01-01
    precipitation: float
    temp_max: float
    temp_min: float
    wind: float
    weather: str


def read_days(wheels: Wheels) -> list[Day]:
    """Every day of seattle-weather.csv, in file order."""
    text = wheels.read(wheels.vega, DAILY_FILE).decode("utf-8")
    return [
        Day(
            row["date"].replace("/", "-"),
            float(row["precipitation"]),
            float(row["temp_max"]),
            float(row["temp_min"]),
            float(row["wind"]),
            row["weather"],
        )
        for row in csv.DictReader(io.StringIO(text))
    ]


def read_hours(wheels: Wheels) -> list[tuple[str, float]]:
    """``(YYYY-MM-DD HH:MM, °F)`` for every row of seattle-temps.csv."""
    text = wheels.read(wheels.vega, HOURLY_FILE).decode("utf-8")
    return [
        (row["date"].replace("/", "-"), float(row["temp"]))
        for row in csv.DictReader(io.StringIO(text))
    ]


def years(days: list[Day]) -> list[int]:
    return sorted({int(d.date[:4]) for d in days})


def tenths(value: float) -> int:
    """A one-decimal observation as an exact integer of tenths."""
    return round(value * 10)
