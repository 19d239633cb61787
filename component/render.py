"""Drawing a product's payload into a 2D canvas context.

The runtime calls :func:`render` for every frame of a mounted component::

    texts = render(product_id, payload, ctx, width, height, options)

``width`` and ``height`` are CSS pixels; the context's transform already
scales them to device pixels. ``options``:

``theme``    ``"light"`` or ``"dark"`` (the host page's choice);
``license``  the licence id, drawn in the visible watermark;
``trace``    the response's trace id (16 bytes, or 32 hex digits), drawn
             visibly and written invisibly into the pixels (see
             :mod:`.watermark`);
``ratio``    device pixels per CSS pixel (default 1);
``view``     the component's :class:`~.views.View` (scrolling, month or
             year shown, click targets); made and stored in ``options`` on
             the first frame when absent, so keep ``options`` between frames;
``event``    what caused the frame (see :func:`apply_event`): a wheel step,
             a key, a click;
``emit``     ``emit(type, code)``: a click that hits an item calls
             ``emit("selection", ref)``;
``surface``  where bitmaps and paths come from (default: the browser's).

It returns the strings drawn, the same text a person reads on the canvas.
A payload that does not have the product's shape raises
:class:`PayloadError`. Between frames, :func:`navigate` (keys),
:func:`scroll` (wheel) and :func:`pick` (clicks, giving the opaque
reference a ``selection`` event carries) act on the view;
:func:`render_message` draws the loading and error states, and
:func:`height_for` says how tall a component wants to be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from . import chart_views, map_views, watermark
from .paint import THEMES, Box, Painter, Theme, theme_named
from .views import WIDE_LAYOUT_MIN, View

__all__ = [
    "THEMES",
    "Box",
    "Painter",
    "PayloadError",
    "Station",
    "StationView",
    "Theme",
    "View",
    "draw_message",
    "draw_stations",
    "height_for",
    "navigate",
    "pick",
    "preferred_height",
    "render",
    "render_message",
    "scroll",
]

HEADER_HEIGHT = 40
FOOTER_HEIGHT = 26
ROW_HEIGHT = 22
ROWS_PER_WHEEL_STEP = 3
STATIONS_TITLE = "广东省气象观测站 Guangdong weather stations"

Drawer = Callable[[Painter, Any, Box, View, Theme], str]
DRAWERS: dict[str, Drawer] = {
    "stations": map_views.draw_stations,
    "card": map_views.draw_card,
    "terrain": map_views.draw_terrain,
    "rivers": map_views.draw_rivers,
    "density": map_views.draw_density,
    "z500": map_views.draw_z500,
    "scales": chart_views.draw_scales,
    "series": chart_views.draw_series,
    "table": chart_views.draw_table,
    "heatmap": chart_views.draw_heatmap,
}
# Preferred CSS heights: (wide layout, narrow layout extra over the width).
HEIGHTS = {
    "stations": (560, 1.25),
    "card": (420, 1.3),
    "terrain": (520, 0.95),
    "rivers": (520, 1.3),
    "density": (520, 1.3),
    "z500": (500, 0.95),
    "scales": (420, 0.8),
    "series": (360, 0.7),
    "table": (400, 0.8),
    "heatmap": (380, 0.75),
}
_NAV_ROWS = {"ArrowDown": 1, "ArrowUp": -1}
_NAV_PERIODS = {"ArrowRight": 1, "ArrowLeft": -1}


class PayloadError(ValueError):
    """The payload does not have the shape its product draws."""


def kind_of(product_id: str, payload: Any) -> str:
    """How a payload is drawn: its ``kind``; gd-stations predates the field."""
    if isinstance(payload, Mapping) and isinstance(payload.get("kind"), str):
        return str(payload["kind"])
    return "stations"


def _trace_bytes(raw: Any) -> bytes | None:
    if isinstance(raw, bytes | bytearray) and len(raw) == watermark.TRACE_BYTES:
        return bytes(raw)
    try:
        value = bytes.fromhex(str(raw))
    except ValueError:
        return None
    return value if len(value) == watermark.TRACE_BYTES else None


def render(
    product_id: str,
    payload: Any,
    ctx: Any,
    width: float,
    height: float,
    options: Mapping[str, Any],
) -> list[str]:
    """Draw one frame of ``product_id``; return the strings drawn.

    Raises:
        PayloadError: the payload is not what this product draws.
    """
    painter = Painter(ctx, options.get("surface"))
    theme = theme_named(options.get("theme"))
    view = _view_of(options)
    selected = apply_event(view, options.get("event"))
    view.targets.clear()
    draw = DRAWERS.get(kind_of(product_id, payload))
    if draw is None:
        raise PayloadError(f"no drawing for {product_id}")
    trace = _trace_bytes(options.get("trace"))
    license_id = str(options.get("license", ""))
    mark = watermark.visible_text(license_id, trace.hex() if trace else "—")
    try:
        _frame(painter, draw, payload, (width, height), view, theme, mark)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
        raise PayloadError(f"{product_id} payload is malformed") from exc
    if trace is not None:
        _stamp(painter, width, height, options, trace, license_id)
    if selected is not None and callable(options.get("emit")):
        options["emit"]("selection", selected)
    return painter.texts


def _view_of(options: Mapping[str, Any]) -> View:
    """The view kept in ``options`` between frames, made on the first."""
    view = options.get("view")
    if isinstance(view, View):
        return view
    view = View()
    if isinstance(options, MutableMapping):
        options["view"] = view
    return view


def apply_event(view: View, event: Any) -> str | None:
    """Act on what caused a frame; the reference of a click that hit something.

    ``event`` is None (first frame, resize), ``{"type": "wheel", "steps":
    n}``, ``{"type": "key", "key": name}`` or ``{"type": "click", "x": x,
    "y": y}`` in CSS pixels. Clicks are matched against the last frame.
    """
    if not isinstance(event, Mapping):
        return None
    kind = event.get("type")
    if kind == "wheel":
        scroll(view, int(event.get("steps", 0)))
    elif kind == "key":
        navigate(view, str(event.get("key", "")))
    elif kind == "click":
        return pick(view, float(event.get("x", -1)), float(event.get("y", -1)))
    return None


def _frame(
    painter: Painter,
    draw: Drawer,
    payload: Any,
    size: tuple[float, float],
    view: View,
    theme: Theme,
    mark: str,
) -> None:
    width, height = size
    painter.rect(Box(0, 0, width, height), theme.background)
    body = Box(0, HEADER_HEIGHT, width, height - HEADER_HEIGHT - FOOTER_HEIGHT)
    painter.ctx.save()
    painter.ctx.beginPath()
    painter.ctx.rect(body.x, body.y, body.w, body.h)
    painter.ctx.clip()
    right = draw(painter, payload, body, view, theme)
    painter.ctx.restore()
    title = payload.get("title") or STATIONS_TITLE
    _title_bar(painter, str(title), right, width, theme)
    watermark.tiled(painter, mark, Box(0, 0, width, height), theme)
    _footer(painter, str(payload.get("source", "")), mark, width, height, theme)


def _stamp(
    painter: Painter,
    width: float,
    height: float,
    options: Mapping[str, Any],
    trace: bytes,
    license_id: str,
) -> None:
    canvas = getattr(painter.ctx, "canvas", None)
    ratio = float(options.get("ratio", 1) or 1)
    w_px = int(getattr(canvas, "width", 0) or round(width * ratio))
    h_px = int(getattr(canvas, "height", 0) or round(height * ratio))
    watermark.stamp(painter, w_px, h_px, trace, license_id)


def _title_bar(
    painter: Painter, title: str, right: str, width: float, theme: Theme
) -> None:
    painter.rect(Box(0, 0, width, HEADER_HEIGHT), theme.panel)
    painter.text(title, 14, HEADER_HEIGHT / 2, theme.text, 15, weight="bold")
    # Without text metrics in every context, widths are estimated (CJK wide).
    room = width - 28 - _text_width(title, 15) - 16
    if right and _text_width(right, 12) <= room:
        painter.text(right, width - 14, HEADER_HEIGHT / 2, theme.muted, 12, "right")


def _text_width(text: str, size: int) -> float:
    return sum(size if ord(c) > 0x2E7F else size * 0.58 for c in text)


def _footer(
    painter: Painter, source: str, mark: str, width: float, height: float, theme: Theme
) -> None:
    bar = Box(0, height - FOOTER_HEIGHT, width, FOOTER_HEIGHT)
    painter.rect(bar, theme.panel)
    middle = bar.y + bar.h / 2
    if width >= WIDE_LAYOUT_MIN:
        painter.text(f"source: {source}", 12, middle, theme.muted, 10)
        painter.text(mark, width - 12, middle, theme.muted, 10, "right")
    else:
        painter.text(mark, 12, middle, theme.muted, 10)


def render_message(
    ctx: Any,
    width: float,
    height: float,
    options: Mapping[str, Any],
    title: str,
    detail: str = "",
    is_error: bool = False,
) -> list[str]:
    """A frame with one message: loading, or an error a person can act on."""
    painter = Painter(ctx, options.get("surface"))
    theme = theme_named(options.get("theme"))
    painter.rect(Box(0, 0, width, height), theme.background)
    colour = theme.error if is_error else theme.text
    if is_error:
        painter.rect(Box(0, 0, width, 4), theme.error)
    painter.text(title, width / 2, height / 2 - 12, colour, 18, "center", "bold")
    if detail:
        painter.text(detail, width / 2, height / 2 + 16, theme.muted, 13, "center")
    return painter.texts


def navigate(view: View, key: str) -> bool:
    """Act on a navigation key; whether the frame needs drawing again."""
    if key in _NAV_PERIODS:
        return view.shift_period(_NAV_PERIODS[key])
    steps = {
        **_NAV_ROWS,
        "PageDown": view.page_rows,
        "PageUp": -view.page_rows,
        "Home": -view.rows,
        "End": view.rows,
    }
    return view.scroll(steps.get(key, 0))


def scroll(view: View, wheel_steps: int) -> bool:
    """Act on wheel steps (positive is down); whether to draw again."""
    return view.scroll(wheel_steps * ROWS_PER_WHEEL_STEP)


def pick(view: View, x: float, y: float) -> str | None:
    """The opaque reference of what was drawn at (x, y) CSS pixels, if anything.

    For stations it is the station number; for table rows, the row's key
    (a month, a date, a colour scale's name). It names an item the user
    sees; it never carries the item's values.
    """
    return view.pick(x, y)


def height_for(product_id: str, payload: Any, width: float) -> int:
    """The CSS height the component would like at ``width``."""
    wide, narrow = HEIGHTS.get(kind_of(product_id, payload), (480, 0.9))
    if width >= WIDE_LAYOUT_MIN:
        return wide
    return int(HEADER_HEIGHT + FOOTER_HEIGHT + width * narrow + 40)


@dataclass
class Frame:
    """Everything one mounted component needs to draw: the runtime's handle.

    Made once the payload is open; the runtime then calls :meth:`draw` for
    each frame (first render, resize, theme) and hands it keys, wheel steps
    and clicks, drawing again when they return True (or a reference).
    """

    product_id: str
    payload: Any
    license_id: str
    trace: bytes
    view: View = field(default_factory=View)

    def draw(
        self,
        ctx: Any,
        width: float,
        height: float,
        theme: str = "light",
        ratio: float = 1.0,
        surface: Any = None,
    ) -> list[str]:
        """Draw into ``ctx`` (transform already set to ``ratio``); the texts."""
        options = {
            "theme": theme,
            "license": self.license_id,
            "trace": self.trace,
            "ratio": ratio,
            "view": self.view,
            "surface": surface,
        }
        return render(self.product_id, self.payload, ctx, width, height, options)

    def key(self, name: str) -> bool:
        return navigate(self.view, name)

    def scroll(self, wheel_steps: int) -> bool:
        return scroll(self.view, wheel_steps)

    def click(self, x: float, y: float) -> str | None:
        """The reference to put in a ``selection`` event, if (x, y) hit one."""
        return pick(self.view, x, y)

    def height(self, width: float) -> int:
        return height_for(self.product_id, self.payload, width)


# -- the first runtime's API (gd-stations only), kept while it is in use -------


@dataclass(frozen=True)
class Station:
    """One row of gd-stations, as the first runtime passed it."""

    station_id: str
    county: str
    lon: float
    lat: float
    alt: float | None


@dataclass
class StationView:
    """The stations, the table's scroll position and what marks the frame."""

    stations: list[Station]
    license_id: str
    trace_hex: str
    source: str
    first_row: int = 0
    page_rows: int = field(default=10, init=False)
    view: View = field(default_factory=View, init=False)

    def scroll(self, rows: int) -> None:
        self.view.scroll(rows)
        self.first_row = self.view.first

    def key(self, key: str) -> None:
        navigate(self.view, key)
        self.first_row = self.view.first

    @property
    def watermark(self) -> str:
        return watermark.visible_text(self.license_id, self.trace_hex)

    def payload(self) -> dict[str, Any]:
        return {
            "columns": ["id", "county", "lon", "lat", "alt"],
            "rows": [
                [s.station_id, s.county, s.lon, s.lat, s.alt] for s in self.stations
            ],
            "source": self.source,
        }


def preferred_height(width: float, rows: int) -> int:
    """The CSS height of gd-stations at ``width`` (first runtime's API)."""
    return height_for("gd-stations", {}, width)


def draw_stations(
    painter: Painter, view: StationView, width: float, height: float, theme: Theme
) -> None:
    """One gd-stations frame through the first runtime's API."""
    options = {
        "theme": _theme_name(theme),
        "license": view.license_id,
        "trace": view.trace_hex,
        "view": view.view,
        "surface": painter.surface,
    }
    painter.texts += render(
        "gd-stations", view.payload(), painter.ctx, width, height, options
    )
    view.page_rows, view.first_row = view.view.page_rows, view.view.first


def draw_message(
    painter: Painter,
    title: str,
    detail: str,
    width: float,
    height: float,
    theme: Theme,
    is_error: bool,
) -> None:
    """A message frame through the first runtime's API."""
    options = {"theme": _theme_name(theme), "surface": painter.surface}
    painter.texts += render_message(
        painter.ctx, width, height, options, title, detail, is_error
    )


def _theme_name(theme: Theme) -> str:
    return next((name for name, t in THEMES.items() if t == theme), "light")
