"""The server's and the licensor's SM2 keys on disk.

Private keys are PKCS#8 PEM files readable only by their owner. The server
holds its own signing key (handshake replies, embed tokens) and the
licensor's public keys by key id; the licensor's private key is used only by
the ``xinfeng license`` commands.
"""

from __future__ import annotations

import logging
import os
import re
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
        for pem in sorted(self.root.glob("licensor-*.pub.pem")):
            kid = pem.name[len("licensor-") : -len(".pub.pem")]
            if _KID.match(kid):
                keys[kid] = SM2PublicKey.from_pem(pem.read_bytes())
        return keys

    def ensure(self) -> tuple[SM2PrivateKey, SM2PrivateKey]:
        """Create the server and licensor keys when missing; return both."""
        server = load_or_create(self.server_key_path)
        licensor = load_or_create(self.licensor_key_path)
        pub = self.root / f"licensor-{key_id(licensor.public_key())}.pub.pem"
        if not pub.exists():
            pub.write_bytes(licensor.public_key().to_pem())
        return server, licensor
