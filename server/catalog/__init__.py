"""The product catalogue: one module per data product, built from real public data.

:data:`SPECS` lists the thirteen demo products. :func:`products` turns
them into served :class:`~xinfeng.server.products.Product` objects: each
derivation runs once per pinned source (cached on disk, see
:func:`xinfeng.server.datasets.cached`) and each request builds a payload
from it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import datasets
from . import (
    cma_colour_scales,
    cn_z500,
    gd_rivers,
    gd_station_card,
    gd_station_density,
    gd_stations,
    gd_terrain,
    seattle_diurnal,
    seattle_extremes,
    seattle_monthly,
    seattle_series,
)
from .spec import ProductSpec

logger = logging.getLogger(__name__)

SPECS: tuple[ProductSpec, ...] = (
    gd_stations.SPEC,
    gd_station_card.SPEC,
    gd_terrain.SPEC,
    gd_rivers.SPEC,
    gd_station_density.SPEC,
    cn_z500.SPEC,
    cma_colour_scales.SPEC,
    seattle_series.TEMPERATURE_SPEC,
    seattle_series.PRECIPITATION_SPEC,
    seattle_series.WIND_SPEC,
    seattle_monthly.SPEC,
    seattle_extremes.SPEC,
    seattle_diurnal.SPEC,
)
PRODUCT_IDS = tuple(spec.product_id for spec in SPECS)


def code_digest() -> str:
    """A digest of the derivation code, so that changed code derives afresh."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    digest.update(Path(datasets.__file__).read_bytes())
    return digest.hexdigest()[:12]


def prepare(cache_dir: Path) -> dict[str, Any]:
    """Fetch and check every source, derive every product; derivations by id.

    Run by ``xinfeng setup``; later runs read the cached derivations, which
    are keyed by the pinned source hashes and by :func:`code_digest`.
    """
    wheels = datasets.ensure_all(cache_dir)
    code = code_digest()
    return {
        spec.product_id: datasets.cached(
            cache_dir,
            f"{spec.product_id}-{code}",
            functools.partial(spec.derive, wheels),
            replaces=spec.product_id,
        )
        for spec in SPECS
    }


def _builder(spec: ProductSpec, derived: Any) -> Callable[[Mapping[str, str]], Any]:
    def build(query: Mapping[str, str]) -> Any:
        return spec.build(derived, query)

    return build


def products(cache_dir: Path) -> list[Any]:
    """The served products, in catalogue order."""
    from ..products import Product

    derived = prepare(cache_dir)
    return [
        Product(
            spec.product_id,
            spec.name,
            spec.grade,
            spec.source,
            _builder(spec, derived[spec.product_id]),
            identifier=spec.identifier(serial_of(spec.product_id)),
        )
        for spec in SPECS
    ]


def serial_of(product_id: str) -> int:
    """The serial of a product's identifier: its place in product id order."""
    return sorted(PRODUCT_IDS).index(product_id) + 1
