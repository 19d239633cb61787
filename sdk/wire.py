"""msgpack framing with explicit limits.

Every message xinfeng reads from the network goes through :func:`unpack`,
which bounds the buffer, every container and string length, and turns any
decoding failure (including hostile nesting) into one ``ProtocolError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from .errors import PayloadTooLarge, ProtocolError


@dataclass(frozen=True)
class Limits:
    """Upper bounds for one decoded message."""

    max_bytes: int
    max_items: int = 64
    max_str: int = 4096
    max_bin: int = 4096


def pack(obj: Any) -> bytes:
    """Serialise ``obj`` the one way xinfeng signs and sends messages."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def unpack(data: bytes, limits: Limits) -> Any:
    """Decode one msgpack message within ``limits``.

    Raises PayloadTooLarge when ``data`` exceeds ``limits.max_bytes`` and
    ProtocolError for anything else that is not one well-formed message.
    """
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge()
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_array_len=limits.max_items,
            max_map_len=limits.max_items,
            max_str_len=limits.max_str,
            max_bin_len=limits.max_bin,
            max_ext_len=0,
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ProtocolError("malformed message") from exc
    except msgpack.UnpackException as exc:
        raise ProtocolError("malformed message") from exc


MAX_UINT = 2**63 - 1


def parse_uint(text: str, limit: int = MAX_UINT) -> int:
    """A decimal number written in ASCII digits only, at most ``limit``.

    Raises ValueError for signs, spaces, non-ASCII digits (``int`` would
    accept ``'١٢'`` and ``str.isdigit`` accepts ``'²'``) and values that do
    not fit a signed 64-bit integer.
    """
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ValueError("not an unsigned integer")
    value = int(text)
    if value > limit:
        raise ValueError("integer out of range")
    return value


def require(obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """Return ``obj[key]`` when ``obj`` is a map and the value has ``kind``.

    ``bool`` never passes for ``int``. Raises ProtocolError otherwise.
    """
    if not isinstance(obj, dict) or key not in obj:
        raise ProtocolError(f"missing field {key}")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ProtocolError(f"wrong type for {key}")
    if not isinstance(value, kinds):
        raise ProtocolError(f"wrong type for {key}")
    return value


def require_bytes(obj: Any, key: str, size: int | None = None) -> bytes:
    """Return the bytes at ``obj[key]``, optionally of exactly ``size``."""
    value: bytes = require(obj, key, bytes)
    if size is not None and len(value) != size:
        raise ProtocolError(f"wrong length for {key}")
    return value
