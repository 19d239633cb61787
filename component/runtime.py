"""The component's entry point in the Worker.

``worker.js`` calls :func:`start` with the OffscreenCanvas, what the
container observed, and an ``emit`` callback. The runtime does the
handshake, fetches the product's envelope, opens it with the same
``xinfeng.sdk.envelope`` code the server uses, and draws. It reports only
events through ``emit`` (ready, error with a code, size): never data.

:data:`LAST_FRAME_TEXT` holds the strings of the last frame drawn, the same
text that is visible on the canvas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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

LAST_FRAME_TEXT: list[str] = []
# Milliseconds each step of the first render took, for tests and benchmarks.
TIMINGS: dict[str, float] = {}
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
    # Generated into the bundle by build_component_bundle; absent from source.
    from ._build import SERVER_PUBLIC_KEY_HEX  # type: ignore[import-not-found]

    return SM2PublicKey.from_bytes(bytes.fromhex(SERVER_PUBLIC_KEY_HEX))


@dataclass(frozen=True)
class ComponentConfig:
    """What the container hands the runtime."""

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
        self.view: render.StationView | None = None
        self.message: tuple[str, str, bool] = ("Loading …", "", False)
        self.width, self.height, self.ratio = config.width, config.height, config.ratio

    async def run(self) -> None:
        """Handshake, fetch, open and draw; show the refusal when there is one."""
        self.resize(self.width, self.height, self.ratio)
        try:
            opened = await self._load()
        except ComponentError as exc:
            self.fail(exc.code)
            return
        self.view = render.StationView(
            stations_from_payload(opened.payload),
            self.config.license_id,
            opened.trace_id.hex(),
            str(opened.payload.get("source", "")),
        )
        started = time.perf_counter()
        self.draw()
        TIMINGS["draw"] = _ms_since(started)
        rows = len(self.view.stations)
        self.emit("size", None, render.preferred_height(self.width / self.ratio, rows))
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
        TIMINGS["handshake"] = _ms_since(started)
        self.message = ("Loading data …", "", False)
        self.draw()
        started = time.perf_counter()
        product = self.config.product
        opened = await fetch_product(self.transport, session, product, clock_ms)
        TIMINGS["data"] = _ms_since(started)
        return opened

    def fail(self, code: str) -> None:
        """Show the error on the canvas and tell the host page its code."""
        title = ERROR_MESSAGES.get(code, DEFAULT_ERROR)
        self.view = None
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
        if self.view is not None:
            self.view.scroll(steps * ROWS_PER_WHEEL_STEP)
            self.draw()

    def key(self, name: str) -> None:
        if self.view is not None:
            self.view.key(name)
            self.draw()

    def draw(self) -> None:
        """Draw one frame and remember its text."""
        ctx = self.canvas.getContext("2d")
        ctx.setTransform(self.ratio, 0, 0, self.ratio, 0, 0)
        painter = render.Painter(ctx)
        css_w, css_h = self.width / self.ratio, self.height / self.ratio
        if self.view is not None:
            render.draw_stations(painter, self.view, css_w, css_h, self.theme)
        else:
            title, detail, is_error = self.message
            render.draw_message(
                painter, title, detail, css_w, css_h, self.theme, is_error
            )
        LAST_FRAME_TEXT[:] = painter.texts


_current: Component | None = None


async def start(canvas: Any, config: Any, emit: EmitFn) -> None:
    """Entry point for ``worker.js``: mount the component on ``canvas``."""
    global _current
    raw = config.to_py() if hasattr(config, "to_py") else config
    _current = Component(
        canvas, ComponentConfig.from_mapping(raw), emit, BrowserTransport()
    )
    await _current.run()


def scroll(steps: int) -> None:
    """Scroll the table by wheel steps (negative is up)."""
    if _current is not None:
        _current.scroll(int(steps))


def key(name: str) -> None:
    """Handle a navigation key from the container."""
    if _current is not None:
        _current.key(str(name))


def resize(width: float, height: float, ratio: float) -> None:
    """The canvas's element changed size."""
    if _current is not None:
        _current.resize(width, height, ratio)
