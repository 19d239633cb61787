"""The component runtime: one Python interpreter, many mounted components.

``worker.js`` boots Pyodide once per page (in a SharedWorker, or in a
dedicated Worker where the browser cannot share one) and calls
:func:`mount` for every container that connects, each with its own
OffscreenCanvas, embed token and ``emit`` callback. Every mounted
:class:`Component` runs its own handshake and holds its own session; they
share nothing but the interpreter. A component reports only events through
``emit`` (ready, error with a code, size): never data.

Drawing goes through ``component/render.py``. Once ``render.render`` exists
the runtime calls it for every frame::

    render.render(product_id, payload, ctx, width, height, options) -> list[str]

``payload`` is the opened envelope's payload, ``ctx`` the canvas's 2D
context (already scaled to CSS pixels), ``width``/``height`` in CSS pixels;
it returns the strings it drew (what tests read as the frame's text).
``options`` is the component's view state, kept between frames; the
renderer may store what it needs in it (a scroll position, a selection):

- ``theme`` (``"light"`` or ``"dark"``), ``license`` (id), ``trace`` (hex
  trace id of the response, for the watermark), ``ratio`` (device pixels
  per CSS pixel);
- ``event``: what caused this frame: ``None`` (first frame, resize),
  ``{"type": "wheel", "steps": n}`` or ``{"type": "key", "key": name}``;
- ``emit``: ``emit(type, code=None, height=None)`` to tell the host page
  an event (the container forwards only the event types it knows).

Until then the station product is drawn with ``render.StationView``.

For tests and benchmarks each component keeps the text of its last frame
(:func:`frame_text`) and how long each start-up step took (:func:`timings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xinfeng.sdk.envelope import Envelope
from xinfeng.sdk.errors import InvalidKey
from xinfeng.sdk.sm2 import SM2PublicKey

from . import render
from .client import (
    BrowserTransport,
    ComponentError,
    Transport,
    environment_report,
    fetch_product,
    open_session,
)

ROWS_PER_WHEEL_STEP = 3

# What a user reads for each refusal; codes are the server's stable codes.
ERROR_MESSAGES = {
    "origin_denied": "licence not valid for this site",
    "license_invalid": "licence not valid",
    "license_expired": "licence expired",
    "license_suspended": "licence suspended",
    "license_revoked": "licence revoked",
    "product_denied": "product not included in this licence",
    "token_invalid": "embed token invalid or expired — reload the page",
    "session_invalid": "session expired — reload the page",
    "replay": "session expired — reload the page",
    "rate_limited": "too many requests — try again later",
    "frozen": "licence temporarily frozen",
    "unavailable": "service temporarily unavailable",
    "network": "cannot reach the data service",
    "bad_envelope": "data failed its integrity check",
    "bad_handshake_reply": "server identity could not be verified",
    "bad_payload": "data in an unexpected format",
}
DEFAULT_ERROR = "the component could not load its data"

EmitFn = Callable[..., Any]


def clock_ms() -> int:
    """Milliseconds since the epoch (the browser's clock under Pyodide)."""
    return time.time_ns() // 1_000_000


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def pinned_server_key() -> SM2PublicKey:
    """The server key baked into this bundle at build time."""
    # Generated into the bundle by build_component_bundle; absent from source
    # and from memory snapshots, which are built from the code alone.
    from ._build import SERVER_PUBLIC_KEY_HEX  # type: ignore[import-not-found]

    return SM2PublicKey.from_bytes(bytes.fromhex(SERVER_PUBLIC_KEY_HEX))


@dataclass(frozen=True)
class ComponentConfig:
    """What a container hands the runtime for one component."""

    token: str
    license_id: str
    product: str
    env: dict[str, Any]
    theme: str
    width: int
    height: int
    ratio: float

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ComponentConfig:
        options = raw.get("options") or {}
        return cls(
            token=str(raw.get("token", "")),
            license_id=str(raw.get("license", "")),
            product=str(raw.get("product", "")),
            env=environment_report(raw.get("environment") or {}, str(raw["build"])),
            theme=str(options.get("theme", "light")),
            width=max(1, int(options.get("width", 800))),
            height=max(1, int(options.get("height", 560))),
            ratio=max(0.5, min(4.0, float(options.get("ratio", 1.0)))),
        )


def stations_from_payload(payload: Any) -> list[render.Station]:
    """The stations of a ``gd-stations`` payload; ComponentError if malformed."""
    try:
        columns = list(payload["columns"])
        index = {name: columns.index(name) for name in ("id", "county", "lon", "lat")}
        alt_at = columns.index("alt")
        return [_station(row, index, alt_at, len(columns)) for row in payload["rows"]]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ComponentError("bad_payload") from exc


def _station(
    row: Any, index: dict[str, int], alt_at: int, width: int
) -> render.Station:
    if not isinstance(row, list) or len(row) != width:
        raise ValueError("row of the wrong shape")
    alt = row[alt_at]
    return render.Station(
        station_id=str(row[index["id"]]),
        county=str(row[index["county"]]),
        lon=float(row[index["lon"]]),
        lat=float(row[index["lat"]]),
        alt=None if alt is None else float(alt),
    )


@dataclass
class Shown:
    """What a component shows once its data is open."""

    envelope: Envelope
    options: dict[str, Any] = field(default_factory=dict)
    stations: render.StationView | None = None


class Component:
    """One mounted component: a canvas, its session and what it shows."""

    def __init__(
        self,
        canvas: Any,
        config: ComponentConfig,
        emit: EmitFn,
        transport: Transport,
        server_key: Callable[[], SM2PublicKey] = pinned_server_key,
    ) -> None:
        self.canvas = canvas
        self.config = config
        self.emit = emit
        self.transport = transport
        self.server_key = server_key
        self.theme = render.THEMES.get(config.theme, render.THEMES["light"])
        self.shown: Shown | None = None
        self.message: tuple[str, str, bool] = ("Loading …", "", False)
        self.width, self.height, self.ratio = config.width, config.height, config.ratio
        self.frame_text: list[str] = []
        self.timings: dict[str, float] = {}

    async def run(self) -> None:
        """Handshake, fetch, open and draw; show the refusal when there is one."""
        self.resize(self.width, self.height, self.ratio)
        try:
            opened = await self._load()
            self.shown = self._show(opened)
        except ComponentError as exc:
            self.fail(exc.code)
            return
        started = time.perf_counter()
        self.draw()
        self.timings["draw"] = _ms_since(started)
        self.emit("size", None, self._preferred_height())
        self.emit("ready")

    async def _load(self) -> Envelope:
        try:
            server_key = self.server_key()
        except (ImportError, InvalidKey) as exc:
            raise ComponentError("bad_build") from exc
        started = time.perf_counter()
        session = await open_session(
            self.transport, self.config.token, self.config.env, server_key, clock_ms
        )
        self.timings["handshake"] = _ms_since(started)
        self.message = ("Loading data …", "", False)
        self.draw()
        started = time.perf_counter()
        product = self.config.product
        opened = await fetch_product(self.transport, session, product, clock_ms)
        self.timings["data"] = _ms_since(started)
        return opened

    def _show(self, opened: Envelope) -> Shown:
        options = {
            "theme": self.config.theme,
            "license": self.config.license_id,
            "trace": opened.trace_id.hex(),
            "ratio": self.ratio,
            "event": None,
            "emit": self.emit,
        }
        if hasattr(render, "render"):
            return Shown(opened, options)
        source = str(opened.payload.get("source", ""))
        stations = render.StationView(
            stations_from_payload(opened.payload),
            self.config.license_id,
            options["trace"],
            source,
        )
        return Shown(opened, options, stations)

    def _preferred_height(self) -> int:
        shown = self.shown
        rows = len(shown.stations.stations) if shown and shown.stations else 0
        return render.preferred_height(self.width / self.ratio, rows)

    def fail(self, code: str) -> None:
        """Show the error on the canvas and tell the host page its code."""
        title = ERROR_MESSAGES.get(code, DEFAULT_ERROR)
        self.shown = None
        self.message = (title, f"code: {code}", True)
        self.draw()
        self.emit("error", code)

    def resize(self, width: float, height: float, ratio: float) -> None:
        """Match the canvas to its new size in device pixels and redraw."""
        self.width, self.height = max(1, int(width)), max(1, int(height))
        self.ratio = max(0.5, min(4.0, float(ratio or 1.0)))
        self.canvas.width = self.width
        self.canvas.height = self.height
        self.draw()

    def scroll(self, steps: int) -> None:
        """Scroll by wheel steps (negative is up)."""
        self.draw({"type": "wheel", "steps": steps})

    def key(self, name: str) -> None:
        """Handle a navigation key."""
        self.draw({"type": "key", "key": name})

    def draw(self, event: dict[str, Any] | None = None) -> None:
        """Draw one frame and remember its text."""
        ctx = self.canvas.getContext("2d")
        ctx.setTransform(self.ratio, 0, 0, self.ratio, 0, 0)
        css_w, css_h = self.width / self.ratio, self.height / self.ratio
        if self.shown is None:
            if event is None:
                self.frame_text = self._draw_message(ctx, css_w, css_h)
            return
        self.frame_text = self._draw_product(ctx, css_w, css_h, event)

    def _draw_message(self, ctx: Any, width: float, height: float) -> list[str]:
        painter = render.Painter(ctx)
        title, detail, is_error = self.message
        render.draw_message(painter, title, detail, width, height, self.theme, is_error)
        return painter.texts

    def _draw_product(
        self, ctx: Any, width: float, height: float, event: dict[str, Any] | None
    ) -> list[str]:
        shown = self.shown
        assert shown is not None
        shown.options.update(event=event, ratio=self.ratio)
        if shown.stations is None:
            payload = shown.envelope.payload
            product = self.config.product
            texts = render.render(product, payload, ctx, width, height, shown.options)
            return list(texts)
        _station_input(shown.stations, event)
        painter = render.Painter(ctx)
        render.draw_stations(painter, shown.stations, width, height, self.theme)
        return painter.texts


def _station_input(view: render.StationView, event: dict[str, Any] | None) -> None:
    if event is None:
        return
    if event["type"] == "wheel":
        view.scroll(int(event["steps"]) * ROWS_PER_WHEEL_STEP)
    elif event["type"] == "key":
        view.key(str(event["key"]))


# -- the runtime's entry points, called by worker.js ----------------------------

_components: dict[int, Component] = {}


def _to_py(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value


async def mount(instance: int, canvas: Any, config: Any, emit: EmitFn) -> None:
    """Mount a component on ``canvas`` under the id ``instance`` and run it."""
    component = Component(
        canvas,
        ComponentConfig.from_mapping(_to_py(config)),
        emit,
        BrowserTransport(),
    )
    _components[int(instance)] = component
    await component.run()


def unmount(instance: int) -> None:
    """Forget a component whose container went away."""
    _components.pop(int(instance), None)


def scroll(instance: int, steps: int) -> None:
    """Scroll a component by wheel steps (negative is up)."""
    component = _components.get(int(instance))
    if component is not None:
        component.scroll(int(steps))


def key(instance: int, name: str) -> None:
    """Hand a navigation key to a component."""
    component = _components.get(int(instance))
    if component is not None:
        component.key(str(name))


def resize(instance: int, width: float, height: float, ratio: float) -> None:
    """A component's canvas element changed size."""
    component = _components.get(int(instance))
    if component is not None:
        component.resize(width, height, ratio)


def frame_text(instance: int) -> list[str]:
    """The strings the component drew in its last frame (for tests)."""
    component = _components.get(int(instance))
    return list(component.frame_text) if component is not None else []


def timings(instance: int) -> dict[str, float]:
    """Milliseconds each start-up step of the component took (for tests)."""
    component = _components.get(int(instance))
    return dict(component.timings) if component is not None else {}


def mounted() -> int:
    """How many components this runtime serves."""
    return len(_components)


# -- memory snapshots -------------------------------------------------------------


def warm_up() -> None:
    """Reach the state worth keeping in a memory snapshot.

    Imports every module the runtime uses and builds the tables that would
    otherwise be built on the first handshake. Generates no key and keeps
    no secret: the snapshot is public, like the code it is made from.
    """
    from xinfeng.sdk import sm2

    from . import client  # noqa: F401

    sm2._SM2P256.g_comb()
    sm2._SM2P256.g_odd()


def after_restore() -> None:
    """Undo what a snapshot shares between every browser that restores it.

    The ``random`` module was seeded when the snapshot was made; reseed it
    from the browser's randomness (xinfeng draws keys from ``secrets``,
    which asks the browser each time, but other code may use ``random``).
    Files unpacked after the restore must be found by later imports.
    """
    import importlib
    import random

    random.seed()
    importlib.invalidate_caches()
