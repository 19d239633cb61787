"""Drawing primitives over a 2D canvas context, and the component's looks.

Everything the component draws goes through :class:`Painter`, which keeps
the strings of the frame it drew (the same text a person reads on the
canvas). In the browser the context is an OffscreenCanvas's
``CanvasRenderingContext2D`` reached through Pyodide's ``js`` proxy; the
few things a context cannot make itself (bitmaps, ``Path2D`` objects) come
from a :class:`Surface`, so the layout runs on CPython with stand-ins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

FONT_FAMILY = "system-ui, 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif"
RGB = tuple[int, int, int]
Stops = Sequence[tuple[float, RGB]]


@dataclass(frozen=True)
class Theme:
    """Colours of one look."""

    background: str
    panel: str
    text: str
    muted: str
    grid: str
    error: str
    watermark: str
    accent: str = "#1f6fb2"
    water: str = "#4a90d9"
    land: str = "#eef1e6"
    outline: str = "#2b3a4a"


THEMES = {
    "light": Theme(
        "#ffffff",
        "#f4f6f8",
        "#1b1f24",
        "#5c6670",
        "#d5dbe1",
        "#a40000",
        "rgba(30, 40, 60, 0.10)",
    ),
    "dark": Theme(
        "#15191e",
        "#1f252c",
        "#e8ecf0",
        "#9aa5b1",
        "#39424c",
        "#ff8a80",
        "rgba(255, 255, 255, 0.09)",
        "#6cb4ff",
        "#5aa7f0",
        "#232a22",
        "#c9d3dc",
    ),
}


def theme_named(name: Any) -> Theme:
    """The theme called ``name``; light for anything else."""
    return THEMES.get(str(name), THEMES["light"])


@dataclass(frozen=True)
class Box:
    """A rectangle in CSS pixels."""

    x: float
    y: float
    w: float
    h: float

    def inset(self, dx: float, dy: float) -> Box:
        return Box(
            self.x + dx,
            self.y + dy,
            max(1.0, self.w - 2 * dx),
            max(1.0, self.h - 2 * dy),
        )

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h


class Surface(Protocol):
    """What drawing needs besides the context: bitmaps and paths."""

    def bitmap(self, rgba: bytes, width: int, height: int) -> Any: ...

    def path(self, svg: str) -> Any: ...

    def read_pixels(self, ctx: Any, width: int, height: int) -> bytearray: ...

    def write_pixels(
        self, ctx: Any, width: int, height: int, pixels: bytearray
    ) -> None: ...


class BrowserSurface:
    """Bitmaps and paths made with the Worker's ``OffscreenCanvas`` and ``Path2D``."""

    def bitmap(self, rgba: bytes, width: int, height: int) -> Any:
        import js  # type: ignore[import-not-found]
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        pixels = js.Uint8ClampedArray.new(to_js(rgba))
        canvas = js.OffscreenCanvas.new(width, height)
        canvas.getContext("2d").putImageData(
            js.ImageData.new(pixels, width, height), 0, 0
        )
        return canvas

    def path(self, svg: str) -> Any:
        import js

        return js.Path2D.new(svg)

    def read_pixels(self, ctx: Any, width: int, height: int) -> bytearray:
        self._image = ctx.getImageData(0, 0, width, height)
        return bytearray(self._image.data.to_py())

    def write_pixels(
        self, ctx: Any, width: int, height: int, pixels: bytearray
    ) -> None:
        image = getattr(self, "_image", None)
        if image is None or image.width != width or image.height != height:
            image = ctx.getImageData(0, 0, width, height)
        image.data.assign(pixels)
        ctx.putImageData(image, 0, 0)
        self._image = None


class Painter:
    """A thin layer over a 2D context that records every string it draws."""

    def __init__(self, ctx: Any, surface: Surface | None = None) -> None:
        self.ctx = ctx
        self.surface = surface or BrowserSurface()
        self.texts: list[str] = []

    def rect(self, box: Box, colour: str) -> None:
        self.ctx.fillStyle = colour
        self.ctx.fillRect(box.x, box.y, box.w, box.h)

    def frame(self, box: Box, colour: str, width: float = 1) -> None:
        self.ctx.strokeStyle = colour
        self.ctx.lineWidth = width
        self.ctx.strokeRect(box.x, box.y, box.w, box.h)

    def line(self, x0: float, y0: float, x1: float, y1: float, colour: str) -> None:
        self.ctx.strokeStyle = colour
        self.ctx.lineWidth = 1
        self.ctx.beginPath()
        self.ctx.moveTo(x0, y0)
        self.ctx.lineTo(x1, y1)
        self.ctx.stroke()

    def dot(self, x: float, y: float, radius: float, colour: str) -> None:
        self.ctx.fillStyle = colour
        self.ctx.beginPath()
        self.ctx.arc(x, y, radius, 0, 2 * math.pi)
        self.ctx.fill()

    def path(
        self,
        svg: str,
        fill: str | None = None,
        stroke: str | None = None,
        width: float = 1.0,
    ) -> None:
        """Fill and/or stroke an SVG path (``M x y L x y … Z``) in one call."""
        if not svg:
            return
        shape = self.surface.path(svg)
        if fill is not None:
            self.ctx.fillStyle = fill
            self.ctx.fill(shape, "evenodd")
        if stroke is not None:
            self.ctx.strokeStyle = stroke
            self.ctx.lineWidth = width
            self.ctx.stroke(shape)

    def clip(self, svg: str) -> None:
        """Clip later drawing to a path until the next ``ctx.restore()``."""
        self.ctx.save()
        self.ctx.clip(self.surface.path(svg), "evenodd")

    def image(
        self, rgba: bytes, width: int, height: int, box: Box, smooth: bool = True
    ) -> None:
        """Draw an RGBA pixel block scaled into ``box``."""
        self.ctx.imageSmoothingEnabled = smooth
        self.ctx.drawImage(
            self.surface.bitmap(rgba, width, height), box.x, box.y, box.w, box.h
        )

    def text(
        self,
        value: str,
        x: float,
        y: float,
        colour: str,
        size: int = 13,
        align: str = "left",
        weight: str = "normal",
    ) -> None:
        self.ctx.fillStyle = colour
        self.ctx.font = f"{weight} {size}px {FONT_FAMILY}"
        self.ctx.textAlign = align
        self.ctx.textBaseline = "middle"
        self.ctx.fillText(value, x, y)
        self.texts.append(value)


def rgb_hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{max(0, min(255, int(c))):02x}" for c in rgb)


def ramp(value: float | None, stops: Stops) -> RGB | None:
    """The colour for ``value``, interpolated between ``stops`` (ascending)."""
    if value is None or math.isnan(value):
        return None
    low_value, low_rgb = stops[0]
    if value <= low_value:
        return low_rgb
    for high_value, high_rgb in stops[1:]:
        if value <= high_value:
            t = (value - low_value) / (high_value - low_value or 1)
            return _mix(low_rgb, high_rgb, t)
        low_value, low_rgb = high_value, high_rgb
    return low_rgb


def step(value: float | None, stops: Stops) -> RGB | None:
    """The colour of the last stop at or below ``value`` (a classed scale)."""
    if value is None or math.isnan(value):
        return None
    colour = stops[0][1]
    for edge, rgb in stops:
        if value >= edge:
            colour = rgb
    return colour


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def fmt(value: Any) -> str:
    """A table cell as text: ``—`` for a missing value."""
    if value is None:
        return "—"
    return str(value)
