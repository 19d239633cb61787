"""The product catalogue: what each product id serves.

A product's payload is plain data that exists only on the server until it
is sealed into an envelope; no route returns it unsealed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xinfeng.sdk.errors import ProductDenied

from . import datasets

Payload = dict[str, Any]


@dataclass(frozen=True)
class Product:
    """A data product: its id, display name, grade and payload builder."""

    product_id: str
    name: str
    grade: int
    source: str
    build: Callable[[Mapping[str, str]], Payload]


def _stations_payload(wheel: Path) -> Callable[[Mapping[str, str]], Payload]:
    stations = datasets.read_stations(wheel)
    rows = [[s.station_id, s.province, s.county, s.lon, s.lat, s.alt]
            for s in stations]

    def build(query: Mapping[str, str]) -> Payload:
        return {
            "product": "gd-stations",
            "columns": ["id", "province", "county", "lon", "lat", "alt"],
            "rows": rows,
            "source": f"CMA station catalogue, meteva {datasets.METEVA_VERSION}",
        }

    return build


class Catalog:
    """Products by id."""

    def __init__(self, products: list[Product]) -> None:
        self._products = {p.product_id: p for p in products}

    def get(self, product_id: str) -> Product:
        """The product, or ProductDenied when the id is unknown."""
        try:
            return self._products[product_id]
        except KeyError:
            raise ProductDenied() from None

    def ids(self) -> list[str]:
        return sorted(self._products)


def default_catalog(cache_dir: Path) -> Catalog:
    """The demo catalogue built from the data fetched at set-up."""
    wheel = datasets.ensure_meteva(cache_dir)
    return Catalog([
        Product("gd-stations", "Guangdong weather-station network", 1,
                "meteva", _stations_payload(wheel)),
    ])
