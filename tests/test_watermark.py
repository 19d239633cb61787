"""The invisible watermark: written into pixels, found again in a PNG screenshot.

The PNG files here are written by a small encoder in this test (zlib and
struct, every filter type), independent of the decoder in
``xinfeng.server.trace``.
"""

from __future__ import annotations

import asyncio
import random
import struct
import zlib
from pathlib import Path

import pytest

from xinfeng.component import watermark
from xinfeng.server import trace
from xinfeng.server.storage import Storage

TRACE = bytes(range(16))
LICENSE = "lic-0123456789ab"


def _canvas(width: int, height: int, seed: int = 7) -> bytearray:
    rng = random.Random(seed)
    pixels = bytearray(rng.randbytes(4 * width * height))
    pixels[3::4] = b"\xff" * (width * height)
    return pixels


def _stamped(width: int, height: int) -> tuple[bytearray, bytearray]:
    before = _canvas(width, height)
    after = bytearray(before)
    watermark.embed(after, width, height, watermark.encode(TRACE, LICENSE))
    return before, after


def _rows(pixels: bytes, width: int, channels: int = 4) -> list[bytes]:
    stride = 4 * width
    rows = [pixels[k : k + stride] for k in range(0, len(pixels), stride)]
    if channels == 3:
        rows = [b"".join(row[i : i + 3] for i in range(0, stride, 4)) for row in rows]
    return rows


def _crop(rows: list[bytes], x: int, y: int, w: int, h: int, ch: int) -> list[bytes]:
    return [row[x * ch : (x + w) * ch] for row in rows[y : y + h]]


def test_mark_survives_encode_and_decode() -> None:
    tile = watermark.encode(TRACE, LICENSE)

    mark = watermark.decode(tile)

    assert len(tile) * 8 == watermark.TILE_W * watermark.TILE_H
    assert mark == watermark.Mark(TRACE, watermark.license_tag(LICENSE))


def test_mark_with_one_flipped_bit_is_rejected() -> None:
    tile = bytearray(watermark.encode(TRACE, LICENSE))
    tile[5] ^= 0x10

    assert watermark.decode(bytes(tile)) is None


def test_embedding_changes_only_the_blue_least_significant_bit() -> None:
    before, after = _stamped(40, 30)

    for channel in (0, 1, 3):
        assert after[channel::4] == before[channel::4]
    assert all(abs(a - b) <= 1 for a, b in zip(after[2::4], before[2::4], strict=True))
    assert after != before


@pytest.mark.parametrize(("x", "y"), [(0, 0), (5, 3), (17, 29), (23, 11)])
def test_mark_is_found_in_any_crop_of_one_tile_or_more(x: int, y: int) -> None:
    _, after = _stamped(64, 64)
    rows = _crop(_rows(after, 64, 3), x, y, 34, 30, 3)

    marks = list(watermark.find_marks(rows, 3))

    assert marks and all(m.trace_id == TRACE for m in marks)


def test_crop_smaller_than_a_tile_carries_no_mark() -> None:
    _, after = _stamped(64, 64)
    rows = _crop(_rows(after, 64), 3, 3, 15, 13, 4)

    assert list(watermark.find_marks(rows, 4)) == []


def test_unmarked_noise_yields_no_mark() -> None:
    rows = _rows(bytes(_canvas(200, 100, seed=3)), 200)

    assert list(watermark.find_marks(rows, 4)) == []


# -- PNG ------------------------------------------------------------------------


def _filtered(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray()
    for i, value in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
        out.append((value - predictor) & 0xFF)
    return bytes(out)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    options = [(abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c)]
    return min(options)[2]


def _png(rows: list[bytes], width: int, channels: int) -> bytes:
    colour = {3: 2, 4: 6}[channels]
    raw = bytearray()
    prev = bytes(len(rows[0]))
    for y, row in enumerate(rows):
        kind = y % 5
        raw += bytes([kind]) + _filtered(kind, row, prev, channels)
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour, 0, 0, 0)
    return (
        trace.PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [3, 4])
def test_png_decoder_undoes_every_filter(channels: int) -> None:
    _, after = _stamped(37, 21)
    rows = _rows(after, 37, channels)

    image = trace.read_png(_png(rows, 37, channels))

    assert (image.width, image.height, image.channels) == (37, 21, channels)
    assert image.rows == rows


def test_non_png_is_refused() -> None:
    with pytest.raises(trace.TraceError):
        trace.read_png(b"GIF89a" + bytes(40))


def _served_log(data_dir: Path, trace_hex: str) -> None:
    async def write() -> None:
        storage = Storage(data_dir / "xinfeng.db")
        await storage.open()
        try:
            await storage.log_event(
                1000,
                "session_opened",
                "ok",
                LICENSE,
                {
                    "origin": "http://127.0.0.1:8001",
                    "ip": "127.0.0.1",
                    "products": ["gd-terrain"],
                },
            )
            await storage.log_event(
                2000,
                "data_served",
                "ok",
                LICENSE,
                {
                    "product": "gd-terrain",
                    "trace": trace_hex,
                    "counter": 1,
                    "ip": "127.0.0.1",
                },
            )
        finally:
            await storage.close()

    asyncio.run(write())


def test_trace_names_the_licence_and_session_of_a_screenshot(tmp_path: Path) -> None:
    _, after = _stamped(48, 40)
    shot = tmp_path / "shot.png"
    shot.write_bytes(_png(_rows(after, 48, 3), 48, 3))
    _served_log(tmp_path, TRACE.hex())

    results = trace.trace_screenshot(shot, tmp_path)

    assert results[0]["license_id"] == LICENSE
    assert results[0]["license_matches_tag"] is True
    assert results[0]["product"] == "gd-terrain"
    assert results[0]["origin"] == "http://127.0.0.1:8001"


def test_trace_of_an_unmarked_image_fails(tmp_path: Path) -> None:
    shot = tmp_path / "plain.png"
    shot.write_bytes(_png(_rows(bytes(_canvas(32, 32)), 32, 3), 32, 3))

    with pytest.raises(trace.TraceError):
        trace.trace_screenshot(shot, tmp_path)
