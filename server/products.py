"""The product catalogue: what each product id serves.

A product's payload is plain data that exists only on the server until it
is sealed into an envelope; no route returns it unsealed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from xinfeng.sdk.errors import ProductDenied

Payload = dict[str, Any]


@dataclass(frozen=True)
class Product:
    """A data product: its id, display name, grade and payload builder.

    ``identifier`` is the data identity identifier the product is filed
    under (``XF-…``), when the catalogue fixes one; empty lets the registry
    allocate the next serial.
    """

    product_id: str
    name: str
    grade: int
    source: str
    build: Callable[[Mapping[str, str]], Payload]
    identifier: str = ""


class ApprovalCheck(Protocol):
    """Where the review state of products is kept (the product registry)."""

    async def require_approved(self, product_id: str) -> None: ...


class Catalog:
    """Products by id. What may be served is decided by the registry."""

    def __init__(self, products: list[Product]) -> None:
        self._products = {p.product_id: p for p in products}

    def get(self, product_id: str) -> Product:
        """The product, or ProductDenied when the id is unknown."""
        try:
            return self._products[product_id]
        except KeyError:
            raise ProductDenied() from None

    async def servable(self, product_id: str, registry: ApprovalCheck) -> Product:
        """The product when it exists and the registry has it approved.

        Asked on every request, so a product retired or taken back into
        review is refused from the next request on.

        Raises:
            ProductDenied: unknown here, or not approved in the registry.
        """
        product = self.get(product_id)
        await registry.require_approved(product_id)
        return product

    def ids(self) -> list[str]:
        return sorted(self._products)


def default_catalog(cache_dir: Path) -> Catalog:
    """The thirteen demo products (:mod:`xinfeng.server.catalog`), from the
    data fetched and derived at set-up."""
    from .catalog import products

    return Catalog(products(cache_dir))
