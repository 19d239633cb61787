"""The server's and the licensor's SM2 keys on disk.

Private keys are PKCS#8 PEM files readable only by their owner. The server
holds its own signing key (handshake replies, embed tokens) and the
licensor's public keys by key id; the licensor's private key is used only to
issue licenses (the ``xinfeng license`` commands and the admin API).

``licensor.pem`` is the active licensor key. Rotation writes a new one in
its place; the old private key is overwritten (not securely wiped: the
filesystem may keep copies) while its public key ``licensor-<kid>.pub.pem``
stays, so licenses it signed remain valid until their end.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from xinfeng.sdk.errors import InvalidKey
from xinfeng.sdk.sm2 import SM2PrivateKey, SM2PublicKey
from xinfeng.sdk.sm3 import sm3_hash

logger = logging.getLogger(__name__)

_KID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def key_id(public_key: SM2PublicKey) -> str:
    """A short stable id for a public key: the start of its SM3 digest."""
    return sm3_hash(public_key.to_bytes()).hex()[:16]


def write_private_key(path: Path, key: SM2PrivateKey) -> None:
    """Write ``key`` as PEM that only the owner can read; never overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.to_pem())


def load_private_key(path: Path) -> SM2PrivateKey:
    """Read a PEM private key; InvalidKey when it is not one."""
    try:
        return SM2PrivateKey.from_pem(path.read_bytes())
    except OSError as exc:
        raise InvalidKey(f"cannot read key file {path.name}") from exc


def load_or_create(path: Path) -> SM2PrivateKey:
    """The key at ``path``, generated on first use."""
    if not path.exists():
        logger.info("generating a new SM2 key at %s", path)
        write_private_key(path, SM2PrivateKey.generate())
    return load_private_key(path)


@dataclass(frozen=True)
class KeyDir:
    """The keys folder of a data directory."""

    root: Path

    @property
    def server_key_path(self) -> Path:
        return self.root / "server.pem"

    @property
    def licensor_key_path(self) -> Path:
        return self.root / "licensor.pem"

    def licensor_public_keys(self) -> dict[str, SM2PublicKey]:
        """Every trusted licensor public key, by key id."""
        keys = {}
        for kid in self.licensor_kids():
            key = self.licensor_public_key(kid)
            if key is not None:
                keys[kid] = key
        return keys

    def licensor_kids(self) -> list[str]:
        """The ids of every licensor public key on disk, sorted."""
        names = (p.name for p in self.root.glob("licensor-*.pub.pem"))
        kids = (n[len("licensor-") : -len(".pub.pem")] for n in names)
        return sorted(kid for kid in kids if _KID.fullmatch(kid))

    def licensor_public_key(self, kid: str) -> SM2PublicKey | None:
        """The licensor public key ``kid``, or None when there is none."""
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            return None
        path = self.root / f"licensor-{kid}.pub.pem"
        try:
            return SM2PublicKey.from_pem(path.read_bytes())
        except FileNotFoundError:
            return None

    def active_licensor_kid(self) -> str | None:
        """The key id of ``licensor.pem``, or None before it exists."""
        if not self.licensor_key_path.exists():
            return None
        return key_id(load_private_key(self.licensor_key_path).public_key())

    def rotate_licensor(self) -> tuple[str, str]:
        """Make a new active licensor key; return ``(old kid, new kid)``."""
        _, old = self.ensure()
        new = SM2PrivateKey.generate()
        new_kid = key_id(new.public_key())
        staged = self.root / "licensor.pem.new"
        staged.unlink(missing_ok=True)
        write_private_key(staged, new)
        (self.root / f"licensor-{new_kid}.pub.pem").write_bytes(
            new.public_key().to_pem()
        )
        os.replace(staged, self.licensor_key_path)
        logger.info("licensor key rotated to %s", new_kid)
        return key_id(old.public_key()), new_kid

    def ensure(self) -> tuple[SM2PrivateKey, SM2PrivateKey]:
        """Create the server and licensor keys when missing; return both."""
        server = load_or_create(self.server_key_path)
        licensor = load_or_create(self.licensor_key_path)
        pub = self.root / f"licensor-{key_id(licensor.public_key())}.pub.pem"
        if not pub.exists():
            pub.write_bytes(licensor.public_key().to_pem())
        return server, licensor


class LicensorKeyring(Mapping[str, SM2PublicKey]):
    """Licensor public keys by kid, read from the keys folder when first asked.

    A running server thus trusts a key created by ``xinfeng keys rotate``
    without a restart. Whether a key is compromised is not decided here:
    that list lives in the database and is checked on every use.
    """

    def __init__(self, keys: KeyDir) -> None:
        self._keys = keys
        self._cache: dict[str, SM2PublicKey] = {}

    def __getitem__(self, kid: str) -> SM2PublicKey:
        if kid not in self._cache:
            key = self._keys.licensor_public_key(kid)
            if key is None:
                raise KeyError(kid)
            self._cache[kid] = key
        return self._cache[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys.licensor_kids())

    def __len__(self) -> int:
        return len(self._keys.licensor_kids())
