"""``xinfeng trace`` refuses hostile PNG files with one clear error."""

from __future__ import annotations

import struct
import zlib

import pytest

from xinfeng.server.trace import TraceError, read_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png(width: int, height: int, idat: bytes, ihdr: bytes | None = None) -> bytes:
    header = ihdr if ihdr is not None else struct.pack(
        ">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def test_read_png_decodes_a_small_rgba_image() -> None:
    rows = b"".join(b"\x00" + bytes([10, 20, 30, 255]) * 3 for _ in range(2))
    image = read_png(png(3, 2, zlib.compress(rows)))
    assert (image.width, image.height, image.channels) == (3, 2, 4)
    assert image.rows[1] == bytes([10, 20, 30, 255]) * 3


def test_png_claiming_100000_by_100000_pixels_refused() -> None:
    with pytest.raises(TraceError):
        read_png(png(100_000, 100_000, zlib.compress(b"\x00" * 64)))


def test_png_with_five_byte_header_refused() -> None:
    with pytest.raises(TraceError):
        read_png(png(1, 1, zlib.compress(b"\x00" * 5), ihdr=b"\x00" * 5))


def test_png_whose_data_inflates_past_its_header_is_cut_at_the_header() -> None:
    # 16 MiB of zeros behind a 4x4 header: inflation stops at 4 rows.
    bomb = zlib.compress(bytes(16 << 20), 9)
    image = read_png(png(4, 4, bomb))
    assert len(image.rows) == 4 and image.rows[0] == bytes(16)


def test_png_with_too_little_image_data_refused() -> None:
    with pytest.raises(TraceError):
        read_png(png(64, 64, zlib.compress(b"\x00" * 100)))


def test_png_with_damaged_image_data_refused() -> None:
    with pytest.raises(TraceError):
        read_png(png(4, 4, b"not zlib at all"))
