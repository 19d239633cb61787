"""Watermarks: a visible licence and trace line, and an invisible one in the pixels.

The invisible mark is a tile of 16 × 14 bits written into the least
significant bit of every pixel's blue channel, repeated over the whole
canvas. A tile holds the magic ``XF``, a version byte, the response's
16-byte trace id, a 4-byte tag of the licence id (the first bytes of its
SHA-256) and a CRC-32 of all that. A lossless screenshot (PNG) of any part
of a component at least one tile large keeps it: :func:`find_marks`
searches each pixel row for the magic and checks the CRC, so neither the
component's position on the page nor a crop matters. A lossy re-encoding
(JPEG) or rescaling destroys it; the visible mark is there for those.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .paint import Box, Painter, Theme

TILE_W = 16
TILE_H = 14
MAGIC = b"XF"
VERSION = 1
TRACE_BYTES = 16
TAG_BYTES = 4
_BODY = struct.Struct(f">2sB{TRACE_BYTES}s{TAG_BYTES}s")
_LSB = bytes(b & 1 for b in range(256))
_CLEAR = bytes(b & 0xFE for b in range(256))
_MAGIC_BITS = bytes((byte >> (7 - k)) & 1 for byte in MAGIC for k in range(8))


@dataclass(frozen=True)
class Mark:
    """What an invisible mark carries."""

    trace_id: bytes
    license_tag: bytes


def license_tag(license_id: str) -> bytes:
    """The first bytes of the SHA-256 of a licence id, as carried in the mark."""
    return hashlib.sha256(license_id.encode("utf-8")).digest()[:TAG_BYTES]


def encode(trace_id: bytes, license_id: str) -> bytes:
    """The tile's bytes (28): body, CRC-32 and zero padding."""
    if len(trace_id) != TRACE_BYTES:
        raise ValueError("a trace id is 16 bytes")
    body = _BODY.pack(MAGIC, VERSION, trace_id, license_tag(license_id))
    tile = body + struct.pack(">I", zlib.crc32(body))
    return tile.ljust(TILE_W * TILE_H // 8, b"\0")


def decode(tile: bytes) -> Mark | None:
    """The mark in a tile's bytes; None unless magic, version and CRC match."""
    body, crc = tile[: _BODY.size], tile[_BODY.size : _BODY.size + 4]
    if len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(body):
        return None
    magic, version, trace_id, tag = _BODY.unpack(body)
    if magic != MAGIC or version != VERSION:
        return None
    return Mark(trace_id, tag)


def tile_rows(tile: bytes) -> list[bytes]:
    """The tile as 14 rows of 16 bit-bytes (each 0 or 1), most significant first."""
    bits = bytes((byte >> (7 - k)) & 1 for byte in tile for k in range(8))
    return [bits[r * TILE_W : (r + 1) * TILE_W] for r in range(TILE_H)]


def embed(pixels: bytearray, width: int, height: int, tile: bytes) -> None:
    """Write the tile, repeated from the top-left corner, into RGBA ``pixels``."""
    rows = tile_rows(tile)
    reps = -(-width // TILE_W)
    plane = b"".join((rows[y % TILE_H] * reps)[:width] for y in range(height))
    blue = bytes(pixels[2 : 4 * width * height : 4]).translate(_CLEAR)
    merged = int.from_bytes(blue, "big") | int.from_bytes(plane, "big")
    pixels[2 : 4 * width * height : 4] = merged.to_bytes(len(blue), "big")


def _bit_rows(rows: Sequence[bytes], channels: int) -> list[bytes]:
    return [bytes(row[2::channels]).translate(_LSB) for row in rows]


def _tile_at(bit_rows: Sequence[bytes], x: int, y: int) -> bytes:
    bits = b"".join(bit_rows[y + r][x : x + TILE_W] for r in range(TILE_H))
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value.to_bytes(TILE_W * TILE_H // 8, "big")


def find_marks(rows: Sequence[bytes], channels: int, limit: int = 64) -> Iterator[Mark]:
    """Every valid mark found in pixel rows (RGB or RGBA, 8 bits a channel)."""
    bit_rows = _bit_rows(rows, channels)
    found = 0
    for y in range(len(bit_rows) - TILE_H + 1):
        start = bit_rows[y].find(_MAGIC_BITS)
        while start != -1 and found < limit:
            if len(bit_rows[y]) - start >= TILE_W:
                mark = decode(_tile_at(bit_rows, start, y))
                if mark is not None:
                    found += 1
                    yield mark
            start = bit_rows[y].find(_MAGIC_BITS, start + 1)


def stamp(
    painter: Painter, width_px: int, height_px: int, trace_id: bytes, license_id: str
) -> None:
    """Write the invisible mark into the whole canvas (device pixels)."""
    pixels = painter.surface.read_pixels(painter.ctx, width_px, height_px)
    embed(pixels, width_px, height_px, encode(trace_id, license_id))
    painter.surface.write_pixels(painter.ctx, width_px, height_px, pixels)


def visible_text(license_id: str, trace_hex: str) -> str:
    return f"licence {license_id} · trace {trace_hex}"


def tiled(painter: Painter, mark: str, box: Box, theme: Theme) -> None:
    """The visible mark, tiled and tilted so any useful crop still carries it."""
    ctx: Any = painter.ctx
    ctx.save()
    ctx.translate(box.x + box.w / 2, box.y + box.h / 2)
    ctx.rotate(-math.pi / 9)
    step_y, step_x = 110, 520
    reach = int(math.hypot(box.w, box.h) / 2) + step_x
    for row, dy in enumerate(range(-reach, reach, step_y)):
        offset = (row % 2) * step_x / 2
        for dx in range(-reach, reach, step_x):
            painter.text(mark, dx + offset, dy, theme.watermark, 13, "center")
    ctx.restore()
