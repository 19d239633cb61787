"""``xinfeng trace``: whose session a screenshot of a component came from.

Every frame a component draws carries an invisible mark in the least
significant bits of its pixels (:mod:`xinfeng.component.watermark`): the
trace id of the response it drew and a tag of the licence id. This module
reads a PNG screenshot with the standard library (zlib and struct), finds
the marks, and looks each trace id up in the audit log of a data directory:
the ``data_served`` event names the licence, the product, the time and
the client network, and the ``session_opened`` event before it from the
same licence and network names the session it was served in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xinfeng.component import watermark
from xinfeng.sdk.errors import XinfengError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # truecolour, truecolour with alpha (8 bits each)


class TraceError(XinfengError):
    """The image cannot be read, or carries no mark."""

    code = "trace_failed"


@dataclass(frozen=True)
class Image:
    """Decoded pixel rows (RGB or RGBA, 8 bits a channel)."""

    width: int
    height: int
    channels: int
    rows: list[bytes]


# Screenshots are a few thousand pixels a side, full-page ones taller;
# anything larger is refused before its image data is inflated, which keeps
# a decompression bomb to at most MAX_PIXELS * 4 bytes.
MAX_SIDE = 32768
MAX_PIXELS = 40_000_000


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise TraceError("not a PNG file")
    chunks, at = [], len(PNG_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        chunks.append((kind, data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def read_png(data: bytes) -> Image:
    """Decode a non-interlaced 8-bit RGB or RGBA PNG.

    Raises:
        TraceError: another PNG kind, or a damaged file.
    """
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise TraceError("PNG without a valid header")
    width, height, depth, colour, _, _, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise TraceError("only 8-bit RGB or RGBA PNGs without interlacing")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or (
        width * height > MAX_PIXELS
    ):
        raise TraceError("PNG too large for a screenshot")
    channels = _CHANNELS[colour]
    expected = height * (width * channels + 1)
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    raw = _inflate(idat, expected)
    return Image(
        width, height, channels, _unfilter(raw, width * channels, height, channels)
    )


def _inflate(idat: bytes, expected: int) -> bytes:
    """The image data, never inflating past what the header declares."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(idat, expected)
    except zlib.error as exc:
        raise TraceError("PNG image data is damaged") from exc
    if len(raw) != expected:
        raise TraceError("PNG image data does not match its header")
    return raw


def _unfilter(raw: bytes, stride: int, height: int, bpp: int) -> list[bytes]:
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if len(line) != stride:
            raise TraceError("PNG image data is truncated")
        _undo(kind, line, previous, bpp)
        previous = bytes(line)
        rows.append(previous)
    return rows


def _undo(kind: int, line: bytearray, prev: bytes, bpp: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        line[:] = ((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = prev[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = prev[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF
        else:
            raise TraceError("PNG uses an unknown filter")


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def marks_in(data: bytes) -> list[tuple[watermark.Mark, int]]:
    """The distinct marks in a PNG, with how many tiles carried each, most first."""
    image = read_png(data)
    found = Counter(watermark.find_marks(image.rows, image.channels, limit=4096))
    return found.most_common()


async def lookup(data_dir: Path, trace_hex: str) -> dict[str, Any] | None:
    """The audit log's record of the response with this trace id, if any."""
    from .storage import Storage

    storage = Storage(data_dir / "xinfeng.db")
    await storage.open()
    try:
        served = await storage.events("data_served")
        opened = await storage.events("session_opened")
    finally:
        await storage.close()
    event = next((e for e in served if e["detail"].get("trace") == trace_hex), None)
    if event is None:
        return None
    return {"served": event, "session": _session_of(event, opened)}


def _session_of(
    served: dict[str, Any], opened: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The latest session opened before ``served`` by its licence and network."""
    candidates = [
        e
        for e in opened
        if e["seq"] < served["seq"]
        and e["license_id"] == served["license_id"]
        and e["detail"].get("ip") == served["detail"].get("ip")
        and served["detail"].get("product") in e["detail"].get("products", [])
    ]
    return candidates[-1] if candidates else None


def trace_screenshot(path: Path, data_dir: Path) -> list[dict[str, Any]]:
    """Every mark in the screenshot at ``path``, each with its audit record.

    Raises:
        TraceError: the file is not a readable PNG or carries no mark.
    """
    try:
        marks = marks_in(path.read_bytes())
    except OSError as exc:
        raise TraceError(f"cannot read {path}") from exc
    if not marks:
        raise TraceError("no xinfeng watermark found in the image")
    results = []
    for mark, tiles in marks:
        trace_hex = mark.trace_id.hex()
        record = asyncio.run(lookup(data_dir, trace_hex))
        results.append(_result(mark, tiles, record))
    return results


def _result(
    mark: watermark.Mark, tiles: int, record: dict[str, Any] | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "trace": mark.trace_id.hex(),
        "tiles": tiles,
        "license_tag": mark.license_tag.hex(),
    }
    if record is None:
        result["found"] = False
        return result
    served, session = record["served"], record["session"]
    license_id = served["license_id"]
    result.update(
        {
            "found": True,
            "license_id": license_id,
            "license_matches_tag": watermark.license_tag(license_id)
            == mark.license_tag,
            "product": served["detail"].get("product"),
            "time_ms": served["time_ms"],
            "network": served["detail"].get("ip"),
            "counter": served["detail"].get("counter"),
            "event_seq": served["seq"],
            "session_opened_seq": session["seq"] if session else None,
            "session_opened_ms": session["time_ms"] if session else None,
            "origin": session["detail"].get("origin") if session else None,
        }
    )
    return result


def _line(result: dict[str, Any]) -> str:
    if not result["found"]:
        return (
            f"trace {result['trace']}: not in this data directory's audit log "
            f"(licence tag {result['license_tag']})"
        )
    check = "" if result["license_matches_tag"] else "  (licence tag MISMATCH)"
    return (
        f"trace {result['trace']}: licence {result['license_id']}{check}, "
        f"product {result['product']}, served {result['time_ms']} ms "
        f"to {result['network']} (audit #{result['event_seq']}), session opened "
        f"{result['session_opened_ms']} ms from {result['origin']} "
        f"(audit #{result['session_opened_seq']}); {result['tiles']} tiles"
    )


def cmd_trace(args: argparse.Namespace) -> int:
    results = trace_screenshot(args.screenshot, args.data_dir)
    if args.json:
        print(json.dumps({"marks": results}, indent=2))
    else:
        print("\n".join(_line(r) for r in results))
    return 0 if any(r["found"] for r in results) else 1


def register(subparsers: Any, common: Any) -> None:
    """Add ``xinfeng trace SCREENSHOT`` to the main parser's subcommands."""
    trace = subparsers.add_parser(
        "trace", help="name the licence and session a component screenshot came from"
    )
    common(trace)
    trace.add_argument("screenshot", type=Path, help="a PNG screenshot")
    trace.set_defaults(func=cmd_trace)
