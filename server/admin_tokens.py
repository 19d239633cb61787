"""Bearer tokens for the admin API, kept hashed in the data directory.

An admin token is ``xfa_<id>.<secret>``: an 8-hex-digit id and 32 random
bytes in base64url. It names one person or service (the admin's name is
the identity recorded in every decision they make through the API, which is
what lets the two-person review rule mean two people). The provider keeps
only SM3 over a domain tag and the secret, in ``admin-tokens.json``
(mode 0600): the secret has 256 bits of entropy, so one hash suffices.
The file is read on every check, so a token created or revoked with the CLI
takes effect on a running server at once.

Admin tokens and license credentials (``xfc_...``) are different secrets
with different prefixes and different stores; neither opens the other's
door.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xinfeng.license.model import format_time
from xinfeng.license.products import check_actor
from xinfeng.sdk.errors import XinfengError
from xinfeng.sdk.sm3 import sm3_hash

PREFIX = "xfa_"
FILE_NAME = "admin-tokens.json"
_DOMAIN = b"xinfeng admin token v1\x00"
_TOKEN_RE = re.compile(r"xfa_([0-9a-f]{8})\.([A-Za-z0-9_-]{43})")
_NO_SUCH_DIGEST = bytes(32)


class AdminUnauthorized(XinfengError):
    """Admin authentication is required."""

    code = "admin_unauthorized"
    status = 401


class AdminTokenError(XinfengError):
    """The admin token cannot be created or revoked."""

    code = "admin_token"
    status = 400


@dataclass(frozen=True)
class AdminTokenEntry:
    """One stored admin token: who it is for, and the hash of its secret."""

    token_id: str
    name: str
    digest: str
    created: str


def _digest(secret: bytes) -> bytes:
    return sm3_hash(_DOMAIN + secret)


class AdminTokens:
    """The admin tokens of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def entries(self) -> list[AdminTokenEntry]:
        """Every stored token entry (no secrets: only their hashes)."""
        try:
            raw = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return []
        return [AdminTokenEntry(**item) for item in raw.get("tokens", [])]

    def new(self, name: str, now_s: int) -> tuple[str, AdminTokenEntry]:
        """Create a token for ``name``; return the token (shown once) and entry.

        Raises:
            AdminTokenError: the name is malformed or already has a token.
        """
        _check_name(name)
        entries = self.entries()
        if any(entry.name == name for entry in entries):
            raise AdminTokenError(f"{name} has a token already; revoke it first")
        secret = secrets.token_bytes(32)
        entry = AdminTokenEntry(
            secrets.token_hex(4), name, _digest(secret).hex(), format_time(now_s)
        )
        self._write([*entries, entry])
        text = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
        return f"{PREFIX}{entry.token_id}.{text}", entry

    def revoke(self, token_id: str) -> AdminTokenEntry:
        """Delete the token ``token_id``; return what it was.

        Raises:
            AdminTokenError: there is no such token.
        """
        entries = self.entries()
        kept = [entry for entry in entries if entry.token_id != token_id]
        if len(kept) == len(entries):
            raise AdminTokenError("no admin token with that id")
        self._write(kept)
        return next(entry for entry in entries if entry.token_id == token_id)

    def check(self, token: str) -> str:
        """The admin name a bearer token belongs to.

        Every token is compared in constant time against its stored hash;
        an unknown id costs the same comparison.

        Raises:
            AdminUnauthorized: the token is malformed, unknown or wrong.
        """
        match = _TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise AdminUnauthorized()
        token_id, text = match.groups()
        secret = base64.urlsafe_b64decode(text + "=")
        # Only the canonical spelling counts: the last character's spare
        # bits would otherwise give one secret several accepted spellings.
        if base64.urlsafe_b64encode(secret).rstrip(b"=").decode() != text:
            raise AdminUnauthorized()
        found = [e for e in self.entries() if e.token_id == token_id]
        expected = bytes.fromhex(found[0].digest) if found else _NO_SUCH_DIGEST
        if not hmac.compare_digest(_digest(secret), expected) or not found:
            raise AdminUnauthorized()
        return found[0].name

    def _write(self, entries: list[AdminTokenEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_suffix(".json.new")
        staged.unlink(missing_ok=True)
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        body: dict[str, Any] = {"tokens": [asdict(entry) for entry in entries]}
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2)
        os.replace(staged, self.path)


def _check_name(name: str) -> None:
    try:
        check_actor(name)
    except XinfengError:
        raise AdminTokenError("admin names are 1-64 of A-Z a-z 0-9 . _ @ -") from None
