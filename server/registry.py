"""Product registration and review, with every decision in the audit log.

The rules live in :mod:`xinfeng.license.products`; this module loads a
product, applies one rule, stores the result (compare-and-set on the row's
version) and appends an audit event naming the product, the actor, the
reason and the outcome. Refused decisions are logged too: an attempt to
approve one's own submission is exactly what an auditor wants to see.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xinfeng.license import products as rules
from xinfeng.license.products import ProductState, RegisteredProduct
from xinfeng.sdk.errors import ProductDenied, XinfengError

from .config import wall_clock_ms
from .products import Catalog
from .registry_store import RegistryStore
from .storage import Storage

logger = logging.getLogger(__name__)

Transition = Callable[[RegisteredProduct], RegisteredProduct]


@asynccontextmanager
async def opened_storage(db_path: Path) -> AsyncIterator[Storage]:
    """The database at ``db_path``, open for the duration of the block."""
    storage = Storage(db_path)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


class ProductRegistry:
    """Register, review and retire products on ``storage``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.store = RegistryStore(storage)

    async def get(self, product_id: str) -> RegisteredProduct:
        """The product; ProductNotFound when there is none."""
        return (await self.store.get(product_id)).product

    async def list_products(self, state: str | None = None) -> list[RegisteredProduct]:
        """Products by id, optionally only those in ``state``."""
        if state is not None:
            state = str(rules.parse_state(state))
        return await self.store.list_products(state)

    async def create(
        self, fields: Mapping[str, Any], actor: str, now_ms: int
    ) -> RegisteredProduct:
        """Register a draft product.

        ``fields`` holds the product id and the editable fields; instead of
        ``identifier`` it may hold ``region`` and ``category_code``, and the
        next free serial is allocated.

        Raises:
            ProductError: a field is missing or malformed.
            ProductConflict: the id or the identifier is taken.
        """
        rules.check_actor(actor)
        product = rules.register(await self._with_identifier(fields))
        try:
            await self.store.create(product, now_ms)
        except XinfengError as exc:
            await self._log(now_ms, "product_created", exc.code, product, actor, "")
            raise
        await self._log(now_ms, "product_created", "ok", product, actor, "")
        return product

    async def edit(
        self, product_id: str, changes: Mapping[str, Any], actor: str, now_ms: int
    ) -> RegisteredProduct:
        """Edit a draft or rejected product into a new draft revision."""
        rules.check_actor(actor)
        return await self._decide(
            product_id,
            "product_edited",
            actor,
            "",
            lambda p: rules.edit(p, changes),
            now_ms,
        )

    async def submit(
        self, product_id: str, actor: str, now_ms: int, note: str = ""
    ) -> RegisteredProduct:
        """Submit a draft for review."""
        return await self._decide(
            product_id,
            "product_submitted",
            actor,
            note,
            lambda p: rules.submit(p, actor),
            now_ms,
        )

    async def approve(
        self, product_id: str, reviewer: str, reason: str, now_ms: int
    ) -> RegisteredProduct:
        """Record one approval by ``reviewer``."""
        rules.check_reason(reason)
        return await self._decide(
            product_id,
            "product_approved",
            reviewer,
            reason,
            lambda p: rules.approve(p, reviewer),
            now_ms,
        )

    async def reject(
        self, product_id: str, reviewer: str, reason: str, now_ms: int
    ) -> RegisteredProduct:
        """Reject a submitted product."""
        rules.check_reason(reason)
        return await self._decide(
            product_id,
            "product_rejected",
            reviewer,
            reason,
            lambda p: rules.reject(p, reviewer),
            now_ms,
        )

    async def retire(
        self, product_id: str, actor: str, reason: str, now_ms: int
    ) -> RegisteredProduct:
        """Take an approved product out of circulation for good."""
        rules.check_reason(reason)
        return await self._decide(
            product_id,
            "product_retired",
            actor,
            reason,
            lambda p: rules.retire(p, actor),
            now_ms,
        )

    async def require_licensable(self, product_ids: tuple[str, ...]) -> None:
        """Raise ProductDenied, naming the product, unless all are approved."""
        for product_id in product_ids:
            try:
                product = await self.get(product_id)
            except rules.ProductNotFound:
                raise ProductDenied(f"product {product_id} is not registered") from None
            rules.require_licensable(product)

    async def _decide(
        self,
        product_id: str,
        kind: str,
        actor: str,
        reason: str,
        transition: Transition,
        now_ms: int,
    ) -> RegisteredProduct:
        stored = await self.store.get(product_id)
        try:
            product = transition(stored.product)
            await self.store.update(stored, product, now_ms)
        except XinfengError as exc:
            await self._log(now_ms, kind, exc.code, stored.product, actor, reason)
            raise
        await self._log(now_ms, kind, "ok", product, actor, reason)
        return product

    async def _with_identifier(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        values = dict(fields)
        if "identifier" in values or not {"region", "category_code"} <= set(values):
            return values
        region, code = values.pop("region"), values.pop("category_code")
        rules.make_identifier(region, code, 1)
        serial = await self.store.next_serial(region, code)
        values["identifier"] = rules.make_identifier(region, code, serial)
        return values

    async def _log(
        self,
        now_ms: int,
        kind: str,
        outcome: str,
        product: RegisteredProduct,
        actor: str,
        reason: str,
    ) -> None:
        detail = {
            "product": product.product_id,
            "identifier": product.identifier,
            "grade": int(product.grade),
            "revision": product.revision,
            "state": str(product.state),
            "approvals": list(product.approvals),
            "actor": actor[:64],
            "reason": reason[: rules.MAX_REASON_LENGTH],
        }
        if outcome != "ok":
            logger.warning("%s refused for %s: %s", kind, product.product_id, outcome)
        await self.storage.log_event(now_ms, kind, outcome, None, detail)


# -- registering a whole catalogue (demo and tests) ----------------------------


@dataclass(frozen=True)
class CatalogReview:
    """Who registers and reviews a catalogue's products, and how they are filed."""

    owner: str
    category: str
    region: str
    category_code: str
    submitter: str
    reviewers: tuple[str, ...]
    reason: str


async def approve_catalog(
    storage: Storage, catalog: Catalog, review: CatalogReview
) -> dict[str, str]:
    """Register, submit and approve every catalogue product not yet approved.

    Products already rejected or retired are left as they are: a decision
    already taken is not overridden. Returns each product's state.
    """
    registry = ProductRegistry(storage)
    states = {}
    for product_id in catalog.ids():
        product = await _ensure_registered(registry, catalog, product_id, review)
        product = await _ensure_reviewed(registry, product, review)
        states[product_id] = str(product.state)
    return states


async def approve_catalog_at(
    data_dir: Path, catalog: Catalog, review: CatalogReview
) -> dict[str, str]:
    """:func:`approve_catalog` on the database of ``data_dir``."""
    async with opened_storage(data_dir / "xinfeng.db") as storage:
        return await approve_catalog(storage, catalog, review)


async def _ensure_registered(
    registry: ProductRegistry, catalog: Catalog, product_id: str, review: CatalogReview
) -> RegisteredProduct:
    try:
        return await registry.get(product_id)
    except rules.ProductNotFound:
        pass
    served = catalog.get(product_id)
    fields = {
        "product_id": product_id,
        "name": served.name,
        "category": review.category,
        "grade": served.grade,
        "region": review.region,
        "category_code": review.category_code,
        "source": served.source,
        "owner": review.owner,
    }
    return await registry.create(fields, review.submitter, wall_clock_ms())


async def _ensure_reviewed(
    registry: ProductRegistry, product: RegisteredProduct, review: CatalogReview
) -> RegisteredProduct:
    pid = product.product_id
    if product.state is ProductState.DRAFT:
        product = await registry.submit(pid, review.submitter, wall_clock_ms())
    for reviewer in review.reviewers:
        if product.state is not ProductState.SUBMITTED:
            break
        if reviewer not in product.approvals and reviewer != product.submitted_by:
            product = await registry.approve(
                pid, reviewer, review.reason, wall_clock_ms()
            )
    if product.state is not ProductState.APPROVED:
        logger.warning("product %s stays %s", pid, product.state)
    return product


__all__ = [
    "ProductRegistry",
    "CatalogReview",
    "approve_catalog",
    "approve_catalog_at",
    "opened_storage",
]
