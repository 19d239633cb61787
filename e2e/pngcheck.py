"""Just enough PNG decoding to tell a drawn canvas from a blank one.

Screenshots from Chromium are 8-bit RGB or RGBA, non-interlaced; that is
all this reads. Standard library only.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}


def _chunks(data: bytes) -> dict[bytes, bytes]:
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    chunks: dict[bytes, bytes] = {}
    at = len(_SIGNATURE)
    while at < len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        body = data[at + 8 : at + 8 + length]
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    return chunks


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytearray, prev: bytes, bpp: int) -> None:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = prev[i]
        corner = prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF


def pixels(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """(width, height, RGB pixels) of an 8-bit RGB(A) PNG."""
    chunks = _chunks(data)
    width, height, depth, colour, _, _, interlace = struct.unpack(
        ">IIBBBBB", chunks[b"IHDR"]
    )
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError("unsupported PNG layout")
    bpp = _CHANNELS[colour]
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * bpp
    prev = bytes(stride)
    out: list[tuple[int, ...]] = []
    for row in range(height):
        start = row * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, prev, bpp)
        out.extend(tuple(line[i : i + 3]) for i in range(0, stride, bpp))
        prev = bytes(line)
    return width, height, out


def colour_stats(data: bytes) -> tuple[int, float]:
    """(distinct colours, share of pixels not of the most common colour)."""
    _, _, pix = pixels(data)
    counts = Counter(pix)
    top = counts.most_common(1)[0][1]
    return len(counts), 1 - top / len(pix)
