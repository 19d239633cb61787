"""The license lifecycle and the licensor's keys, shared by the CLI and admin API.

A license is issued once and never changes: its status (active, suspended,
revoked) is stored beside it. Suspension is reversible, revocation final.
Renewal issues a new license with the same fields and a new window, linked
to the old one (``renews``), which stays valid until its own end; the
integrator receives a new credential. Re-scoping (other products, origins,
networks, rates) is done by issuing a new license and revoking the old one.

Licensor keys rotate: the active key signs new licenses, retired keys keep
verifying what they signed. A key marked compromised no longer verifies
anything: every license it signed is refused until reissued.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from xinfeng.license.credentials import new_credential
from xinfeng.license.model import (
    License,
    format_time,
    issue_license,
    verify_license,
)
from xinfeng.sdk.errors import LicenseError, XinfengError

from .keys import KeyDir, LicensorKeyring, key_id
from .limits_store import frozen_until
from .registry import ProductRegistry
from .registry_store import RegistryStore
from .storage import LicenseRecord, Storage

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 1024
DEFAULT_LICENSE_DAYS = 365
LICENSE_DEFAULTS: dict[str, Any] = {
    "networks": [],
    "rate_per_minute": 120,
    "rate_per_day": 20000,
    "max_sessions": 20,
}
LICENSE_FIELDS = (
    "licensee",
    "project",
    "contract_id",
    "scenario",
    "products",
    "origins",
    "networks",
    "not_before",
    "not_after",
    "rate_per_minute",
    "rate_per_day",
    "max_sessions",
)
# action -> (statuses it applies to, resulting status, audit event kind)
STATUS_CHANGES = {
    "suspend": (("active",), "suspended", "license_suspended"),
    "resume": (("suspended",), "active", "license_resumed"),
    "revoke": (("active", "suspended"), "revoked", "license_revoked"),
}


class LicenseNotFound(XinfengError):
    """There is no license with that id."""

    code = "license_not_found"
    status = 404


class LicenseFieldsInvalid(XinfengError):
    """The license fields are missing or malformed."""

    code = "license_fields_invalid"
    status = 400


class LicenseStateError(XinfengError):
    """The license's status does not allow this change."""

    code = "license_state"
    status = 409


class KeyRefused(XinfengError):
    """The licensor key operation is not possible."""

    code = "key_refused"
    status = 409


@dataclasses.dataclass(frozen=True)
class LicenseFilter:
    """Which licenses to list; None matches everything."""

    status: str | None = None
    project: str | None = None
    licensee: str | None = None
    product: str | None = None
    key_id: str | None = None

    def matches(self, status: str, lic: License | None) -> bool:
        if self.status is not None and status != self.status:
            return False
        wanted = (self.project, self.licensee, self.product, self.key_id)
        if lic is None:
            return all(value is None for value in wanted)
        return (
            self.project in (None, lic.project)
            and self.licensee in (None, lic.licensee)
            and (self.product is None or self.product in lic.products)
            and self.key_id in (None, lic.key_id)
        )


def check_reason(reason: object) -> str:
    """A reason for a status change: non-empty text of at most 1024 characters.

    Raises:
        LicenseFieldsInvalid: it is not.
    """
    if not isinstance(reason, str) or not 0 < len(reason.strip()) <= MAX_REASON_LENGTH:
        raise LicenseFieldsInvalid("a reason (1-1024 characters) is required")
    return reason


def issue_window(
    now_s: int, not_before: int | None, not_after: int | None, days: int | None
) -> tuple[int, int]:
    """The window of a new license: from ``not_before`` (default now) to
    ``not_after``, else ``days`` (default 365) later."""
    start = now_s if not_before is None else not_before
    if not_after is not None:
        return start, not_after
    return start, start + (days or DEFAULT_LICENSE_DAYS) * 86400


def renewal_window(
    old: License,
    now_s: int,
    not_before: int | None,
    not_after: int | None,
    days: int | None,
) -> tuple[int, int]:
    """The window of a renewal of ``old``.

    Starts at ``not_before`` or now. Ends at ``not_after``, else ``days``
    after the old end (or after now, when the old license has lapsed), else
    one more term of the old license's length after that point.
    """
    start = now_s if not_before is None else not_before
    if not_after is not None:
        return start, not_after
    anchor = max(old.not_after, now_s)
    term = old.not_after - old.not_before if days is None else days * 86400
    return start, anchor + term


class Licensor:
    """License and key operations on one database and one keys folder."""

    def __init__(self, storage: Storage, keys: KeyDir) -> None:
        self.storage = storage
        self.keys = keys
        self.keyring = LicensorKeyring(keys)
        self.store = RegistryStore(storage)

    # -- issue and renew ------------------------------------------------------

    async def issue(
        self,
        fields: Mapping[str, Any],
        actor: str,
        now_ms: int,
        renews: str | None = None,
    ) -> dict[str, Any]:
        """Sign and store a license for approved products; return its id,
        token and credential (the credential is shown once).

        Raises:
            LicenseFieldsInvalid: a field is missing or malformed.
            ProductDenied: a product is not registered and approved.
            LicenseStateError: ``renews`` was renewed already.
        """
        _, licensor = self.keys.ensure()
        kid = key_id(licensor.public_key())
        lic = _build_license("lic-" + secrets.token_hex(6), kid, fields)
        try:
            await ProductRegistry(self.storage).require_licensable(lic.products)
        except XinfengError as exc:
            await self._log(
                now_ms,
                "license_issued",
                exc.code,
                None,
                {
                    "project": lic.project,
                    "actor": actor[:64],
                    "products": list(lic.products),
                },
            )
            raise
        if renews is not None:
            await self._reserve_renewal(lic.license_id, renews, now_ms)
        return await self._sign_and_store(lic, licensor, actor, now_ms, renews)

    async def renew(
        self,
        license_id: str,
        actor: str,
        now_ms: int,
        not_before: int | None = None,
        not_after: int | None = None,
        days: int | None = None,
    ) -> dict[str, Any]:
        """Issue the successor of an active license, with a new window.

        Raises:
            LicenseNotFound, LicenseStateError: no such license, or it is
                suspended, revoked or renewed already.
        """
        record = await self._record(license_id)
        if record.status != "active":
            raise LicenseStateError(
                f"license is {record.status}; only an active license can be renewed"
            )
        old = self._read(record.token)
        if old is None:
            raise LicenseError("the stored license does not verify")
        start, end = renewal_window(old, now_ms // 1000, not_before, not_after, days)
        fields = {name: getattr(old, name) for name in LICENSE_FIELDS}
        fields |= {"not_before": start, "not_after": end}
        issued = await self.issue(fields, actor, now_ms, renews=license_id)
        await self._log(
            now_ms,
            "license_renewed",
            "ok",
            license_id,
            {"renewed_by": issued["license_id"], "actor": actor[:64]},
        )
        return issued

    async def _reserve_renewal(self, license_id: str, renews: str, now_ms: int) -> None:
        await self._record(renews)
        if not await self.store.reserve_renewal(license_id, renews, now_ms):
            raise LicenseStateError("license was renewed already")

    async def _sign_and_store(
        self, lic: License, licensor: Any, actor: str, now_ms: int, renews: str | None
    ) -> dict[str, Any]:
        token = issue_license(lic, licensor, lic.key_id, issued_at=now_ms // 1000)
        credential, verifier = new_credential(lic.license_id)
        try:
            await self.storage.put_license(lic.license_id, token, verifier, now_ms)
        except XinfengError:
            if renews is not None:
                await self.store.drop_renewal(lic.license_id)
            raise
        await self._log(
            now_ms,
            "license_issued",
            "ok",
            lic.license_id,
            {
                "project": lic.project,
                "licensee": lic.licensee,
                "products": list(lic.products),
                "origins": list(lic.origins),
                "kid": lic.key_id,
                "renews": renews,
                "actor": actor[:64],
            },
        )
        return {
            "license_id": lic.license_id,
            "credential": credential,
            "token": token,
            "not_before": format_time(lic.not_before),
            "not_after": format_time(lic.not_after),
            "renews": renews,
            "key_id": lic.key_id,
        }

    # -- read -------------------------------------------------------------------

    async def show(self, license_id: str, now_s: int) -> dict[str, Any]:
        """The license's verified claims, status and links.

        Raises:
            LicenseNotFound: there is no such license.
        """
        record = await self._record(license_id)
        lic = self._read(record.token)
        renews, renewed_by = await self.store.renewal_links(license_id)
        compromised = await self.store.compromised_kids()
        view = {
            "license_id": license_id,
            "status": record.status,
            "status_reason": await self.store.license_status_reason(license_id),
            "renews": renews,
            "renewed_by": renewed_by,
            "signature_valid": lic is not None,
        }
        if lic is None:
            return view | {"usable_now": False}
        return (
            view
            | _claims_view(lic)
            | {
                "key_compromised": lic.key_id in compromised,
                "usable_now": record.status == "active"
                and lic.not_before <= now_s < lic.not_after
                and lic.key_id not in compromised,
            }
        )

    async def list_licenses(
        self, wanted: LicenseFilter, now_ms: int
    ) -> list[dict[str, Any]]:
        """Licenses matching ``wanted``, oldest first, in summary; a license
        the abuse monitor has frozen carries ``frozen_until``."""
        rows = []
        compromised = await self.store.compromised_kids()
        frozen = await frozen_until(self.storage, now_ms)
        for record in await self.storage.list_licenses():
            lic = self._read(record.token)
            if wanted.matches(record.status, lic):
                row = _summary(record, lic, compromised)
                if record.license_id in frozen:
                    until = frozen[record.license_id] // 1000
                    row["frozen_until"] = format_time(until)
                rows.append(row)
        return rows

    # -- status -----------------------------------------------------------------

    async def change_status(
        self, license_id: str, action: str, reason: str, actor: str, now_ms: int
    ) -> dict[str, Any]:
        """Suspend, resume or revoke a license, with a reason.

        Raises:
            LicenseNotFound: there is no such license.
            LicenseStateError: the status does not allow ``action`` (resume
                an active license, anything on a revoked one).
        """
        allowed, status, kind = STATUS_CHANGES[action]
        check_reason(reason)
        record = await self._record(license_id)
        detail = {"reason": reason, "actor": actor[:64], "from": record.status}
        changed = record.status in allowed and await self.storage.set_license_status(
            license_id, status, reason
        )
        if not changed:
            await self._log(now_ms, kind, "license_state", license_id, detail)
            raise LicenseStateError(f"license is {record.status}; cannot {action}")
        await self._log(now_ms, kind, "ok", license_id, detail)
        return {"license_id": license_id, "status": status}

    # -- keys ----------------------------------------------------------------------

    async def key_rows(self) -> list[dict[str, Any]]:
        """Every licensor key: active, compromised, how many licenses it signed."""
        active = self.keys.active_licensor_kid()
        compromised = await self.store.compromised_kids()
        signed: dict[str, int] = {}
        for record in await self.storage.list_licenses():
            kid = _header_kid(record.token)
            signed[kid] = signed.get(kid, 0) + 1
        return [
            {
                "kid": kid,
                "active": kid == active,
                "compromised": kid in compromised,
                "licenses": signed.get(kid, 0),
            }
            for kid in self.keys.licensor_kids()
        ]

    async def rotate_key(self, actor: str, now_ms: int) -> dict[str, Any]:
        """Make a new licensor key active; the old one keeps verifying."""
        old, new = self.keys.rotate_licensor()
        await self._log(
            now_ms,
            "licensor_key_rotated",
            "ok",
            None,
            {"old_kid": old, "new_kid": new, "actor": actor[:64]},
        )
        return {"old_kid": old, "new_kid": new}

    async def mark_compromised(
        self, kid: str, reason: str, actor: str, now_ms: int
    ) -> dict[str, Any]:
        """Refuse every license signed by the retired key ``kid`` from now on.

        Raises:
            KeyRefused: no such key, or it is the active key (rotate first).
        """
        check_reason(reason)
        if kid not in self.keys.licensor_kids():
            raise KeyRefused("no licensor key with that id")
        if kid == self.keys.active_licensor_kid():
            raise KeyRefused("the active key cannot be marked; rotate first")
        newly = await self.store.mark_compromised(kid, reason, now_ms)
        affected = [
            r.license_id
            for r in await self.storage.list_licenses()
            if _header_kid(r.token) == kid
        ]
        await self._log(
            now_ms,
            "licensor_key_compromised",
            "ok",
            None,
            {"kid": kid, "reason": reason, "actor": actor[:64], "licenses": affected},
        )
        return {"kid": kid, "newly_marked": newly, "licenses": affected}

    # -- helpers ---------------------------------------------------------------

    async def _record(self, license_id: str) -> LicenseRecord:
        record = await self.storage.get_license(license_id)
        if record is None:
            raise LicenseNotFound()
        return record

    def _read(self, token: str) -> License | None:
        """The license in a stored token, signature verified, window ignored."""
        moment = _moment_inside(token)
        if moment is None:
            return None
        try:
            return verify_license(token, self.keyring, moment, leeway=0)
        except LicenseError:
            return None

    async def _log(
        self,
        now_ms: int,
        kind: str,
        outcome: str,
        license_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        await self.storage.log_event(now_ms, kind, outcome, license_id, detail)


def _build_license(license_id: str, kid: str, fields: Mapping[str, Any]) -> License:
    unknown = set(fields) - set(LICENSE_FIELDS)
    if unknown:
        raise LicenseFieldsInvalid(
            "unknown license fields: "
            + ", ".join(sorted(str(name)[:32] for name in unknown))
        )
    values: dict[str, Any] = {name: fields.get(name) for name in LICENSE_FIELDS}
    values["networks"] = values["networks"] or ()
    try:
        return License(license_id=license_id, key_id=kid, **values)
    except (ValueError, TypeError) as exc:
        raise LicenseFieldsInvalid(f"license not issued: {exc}") from None


def _claims_view(lic: License) -> dict[str, Any]:
    view = dataclasses.asdict(lic)
    for name in ("products", "origins", "networks"):
        view[name] = list(view[name])
    view["not_before"] = format_time(lic.not_before)
    view["not_after"] = format_time(lic.not_after)
    return view


def _summary(
    record: LicenseRecord, lic: License | None, compromised: set[str]
) -> dict[str, Any]:
    row: dict[str, Any] = {"license_id": record.license_id, "status": record.status}
    if lic is None:
        return row | {"signature_valid": False}
    return row | {
        "project": lic.project,
        "licensee": lic.licensee,
        "products": list(lic.products),
        "not_after": format_time(lic.not_after),
        "key_id": lic.key_id,
        "key_compromised": lic.key_id in compromised,
    }


def _segment_json(token: str, index: int) -> dict[str, Any] | None:
    try:
        segment = token.split(".")[index]
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _moment_inside(token: str) -> int | None:
    """A time inside the token's window (not yet trusted: verify after)."""
    claims = _segment_json(token, 1) or {}
    times = [claims.get(name) for name in ("nbf", "iat", "exp")]
    nbf, iat, exp = (t if type(t) is int else None for t in times)
    if nbf is None or iat is None or exp is None:
        return None
    moment = max(nbf, iat)
    return moment if moment < exp else None


def _header_kid(token: str) -> str:
    kid = (_segment_json(token, 0) or {}).get("kid")
    return kid if isinstance(kid, str) else ""
