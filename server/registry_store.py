"""The licensor's registry in SQLite: products, renewals, compromised keys.

Shares the aiosqlite connection of :class:`~xinfeng.server.storage.Storage`;
:data:`SCHEMA` is created when that storage opens. Product rows carry a
``version`` that every update must name (compare-and-set), so two reviewers
deciding at once cannot overwrite each other's approval. A database failure
surfaces as ``StorageUnavailable``; a taken id or identifier as
``ProductConflict``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xinfeng.license.products import (
    ProductConflict,
    ProductNotFound,
    ProductState,
    RegisteredProduct,
    identifier_serial,
)
from xinfeng.sdk.errors import LicenseError, ProductDenied, StorageUnavailable

if TYPE_CHECKING:
    from .storage import Storage

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    grade INTEGER NOT NULL CHECK (grade IN (1, 2, 3)),
    identifier TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    owner TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('draft', 'submitted', 'approved', 'rejected', 'retired')),
    submitted_by TEXT,
    approvals TEXT NOT NULL,
    revision INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS license_renewals (
    license_id TEXT PRIMARY KEY,
    renews TEXT NOT NULL UNIQUE REFERENCES licenses(license_id),
    time_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS compromised_keys (
    kid TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    time_ms INTEGER NOT NULL
);
"""

_COLUMNS = (
    "product_id, name, category, grade, identifier, source, owner, state,"
    " submitted_by, approvals, revision"
)


@dataclass(frozen=True)
class StoredProduct:
    """A product as stored, with the version an update must name."""

    product: RegisteredProduct
    version: int


@asynccontextmanager
async def _guard(what: str) -> AsyncIterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise ProductConflict("product id or identifier already registered") from exc
    except (sqlite3.Error, ValueError) as exc:
        logger.error("registry failure during %s: %s", what, type(exc).__name__)
        raise StorageUnavailable() from exc


def _row_values(p: RegisteredProduct) -> tuple[Any, ...]:
    return (
        p.product_id,
        p.name,
        p.category,
        int(p.grade),
        p.identifier,
        p.source,
        p.owner,
        str(p.state),
        p.submitted_by,
        json.dumps(list(p.approvals)),
        p.revision,
    )


def _from_row(row: tuple[Any, ...]) -> RegisteredProduct:
    values = list(row)
    values[9] = tuple(json.loads(values[9]))
    return RegisteredProduct(*values)


class RegistryStore:
    """Registry queries on the connection of ``storage``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        async with _guard(sql.split()[0].lower()):
            async with self.storage.db.execute(sql, args) as cur:
                return list(await cur.fetchall())

    async def _first(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        rows = await self._fetch(sql, args)
        return rows[0] if rows else None

    # -- products ----------------------------------------------------------------

    async def create(self, product: RegisteredProduct, now_ms: int) -> None:
        """Store a new product; ProductConflict when its id or identifier is taken."""
        await self._fetch(
            f"INSERT INTO products ({_COLUMNS}, version, created_ms, updated_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
            " RETURNING product_id",
            (*_row_values(product), now_ms, now_ms),
        )

    async def get(self, product_id: str) -> StoredProduct:
        """The stored product; ProductNotFound when there is none."""
        row = await self._first(
            f"SELECT {_COLUMNS}, version FROM products WHERE product_id = ?",
            (product_id,),
        )
        if row is None:
            raise ProductNotFound()
        return StoredProduct(_from_row(row[:-1]), row[-1])

    async def update(
        self, stored: StoredProduct, product: RegisteredProduct, now_ms: int
    ) -> None:
        """Replace ``stored`` with ``product`` unless it changed meanwhile.

        Raises:
            ProductConflict: another change came first, or the new
                identifier is taken.
        """
        row = await self._first(
            "UPDATE products SET product_id = ?, name = ?, category = ?,"
            " grade = ?, identifier = ?, source = ?, owner = ?, state = ?,"
            " submitted_by = ?, approvals = ?, revision = ?,"
            " version = version + 1, updated_ms = ?"
            " WHERE product_id = ? AND version = ? RETURNING version",
            (*_row_values(product), now_ms, stored.product.product_id, stored.version),
        )
        if row is None:
            raise ProductConflict("the product changed meanwhile; try again")

    async def list_products(self, state: str | None = None) -> list[RegisteredProduct]:
        """Products ordered by id, optionally only those in ``state``."""
        sql = f"SELECT {_COLUMNS} FROM products"
        args: tuple[Any, ...] = ()
        if state is not None:
            sql, args = sql + " WHERE state = ?", (state,)
        rows = await self._fetch(sql + " ORDER BY product_id", args)
        return [_from_row(row) for row in rows]

    async def require_approved(self, product_id: str) -> None:
        """Raise ProductDenied unless the product is registered and approved."""
        row = await self._first(
            "SELECT state FROM products WHERE product_id = ?", (product_id,)
        )
        if row is None or row[0] != ProductState.APPROVED:
            raise ProductDenied()

    async def next_serial(self, region: str, category: str) -> int:
        """The next free identifier serial for ``region`` and ``category``."""
        rows = await self._fetch(
            "SELECT identifier FROM products WHERE identifier LIKE ?",
            (f"XF-{region}-{category}-%",),
        )
        return max((identifier_serial(r[0]) for r in rows), default=0) + 1

    # -- license renewals ------------------------------------------------------

    async def reserve_renewal(self, license_id: str, renews: str, now_ms: int) -> bool:
        """Record that ``license_id`` will renew ``renews``.

        Made before the new license is stored, so that two renewals of one
        license cannot both succeed: False when ``renews`` was renewed already.
        """
        row = await self._first(
            "INSERT INTO license_renewals (license_id, renews, time_ms)"
            " VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING license_id",
            (license_id, renews, now_ms),
        )
        return row is not None

    async def drop_renewal(self, license_id: str) -> None:
        """Undo a reservation whose license could not be stored."""
        await self._fetch(
            "DELETE FROM license_renewals WHERE license_id = ? RETURNING license_id",
            (license_id,),
        )

    async def renewal_links(self, license_id: str) -> tuple[str | None, str | None]:
        """``(renews, renewed_by)`` for a license; None where there is no link."""
        renews = await self._first(
            "SELECT renews FROM license_renewals WHERE license_id = ?", (license_id,)
        )
        renewed_by = await self._first(
            "SELECT license_id FROM license_renewals WHERE renews = ?", (license_id,)
        )
        return (renews[0] if renews else None, renewed_by[0] if renewed_by else None)

    async def license_status_reason(self, license_id: str) -> str:
        """The reason given with a license's last status change."""
        row = await self._first(
            "SELECT status_reason FROM licenses WHERE license_id = ?", (license_id,)
        )
        return str(row[0]) if row else ""

    # -- licensor keys ------------------------------------------------------------

    async def mark_compromised(self, kid: str, reason: str, now_ms: int) -> bool:
        """Mark a licensor key compromised; False when it already was."""
        row = await self._first(
            "INSERT INTO compromised_keys (kid, reason, time_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (kid) DO NOTHING RETURNING kid",
            (kid, reason, now_ms),
        )
        return row is not None

    async def compromised_kids(self) -> set[str]:
        """Every licensor key id marked compromised."""
        return {row[0] for row in await self._fetch("SELECT kid FROM compromised_keys")}

    async def require_trusted_key(self, kid: str) -> None:
        """Raise LicenseError when the licensor key ``kid`` is compromised."""
        row = await self._first("SELECT 1 FROM compromised_keys WHERE kid = ?", (kid,))
        if row is not None:
            raise LicenseError()
