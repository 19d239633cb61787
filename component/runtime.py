"""The component runtime: one Python interpreter, many mounted components.

``worker.js`` boots Pyodide once per page (in a SharedWorker, or in a
dedicated Worker where the browser cannot share one) and calls
:func:`mount` for every container that connects, each with its own
OffscreenCanvas, embed token and ``emit`` callback. Every mounted
:class:`Component` runs its own handshake and holds its own session; they
share nothing but the interpreter. A component tells the host page events
only through ``emit`` (ready, error with a code, size, selection with an
item's reference): never data.

Drawing is ``component/render.py``'s: once the envelope is open the
component makes a :class:`render.Frame` of the payload and asks it to draw
each frame, to act on keys, wheel steps and clicks, and for its preferred
height; :func:`render.render_message` draws the loading and error states.

A session lives a few minutes. A mounted component renews it shortly
before it ends (:meth:`Component.keep_alive`), and before a request when
it is about to end; each renewal has the server check the licence again,
so a suspended or expired licence stops an open component at the latest
then (and at once for any data request).

For tests and benchmarks each component keeps the text of its last frame
(:func:`frame_text`) and how long each start-up step took (:func:`timings`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xinfeng.sdk.envelope import ClientSession, Envelope
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
    renew_session,
)

# Renew a session this long before it ends; never wait less than the floor
# between two renewals (a server with a very short session life).
RENEW_BEFORE_MS = 60_000
MIN_RENEW_WAIT_MS = 5_000
# Refusals a renewal is tried again after (while the session lasts).
PASSING_CODES = frozenset({"network", "unavailable", "rate_limited"})

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
    "license_frozen": "licence temporarily frozen",
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


class Component:
    """One mounted component: a canvas, its session and what it shows."""

    def __init__(
        self,
        canvas: Any,
        config: ComponentConfig,
        emit: EmitFn,
        transport: Transport,
        server_key: Callable[[], SM2PublicKey] = pinned_server_key,
        surface: Any = None,
    ) -> None:
        self.canvas = canvas
        self.config = config
        self.emit = emit
        self.transport = transport
        self.server_key = server_key
        # Where bitmaps come from: None is the browser's (render.py).
        self.surface = surface
        self.frame: render.Frame | None = None
        self.message: tuple[str, str, bool] = ("Loading …", "", False)
        self.width, self.height, self.ratio = config.width, config.height, config.ratio
        self.frame_text: list[str] = []
        self.timings: dict[str, float] = {}
        self.session: ClientSession | None = None
        self.hidden = bool(config.env.get("hidden", False))
        self.closed = False
        # One request of the session at a time, so counters arrive in order;
        # refreshes asked for meanwhile fold into one waiting behind it.
        self.requests = asyncio.Lock()
        self.refresh_waiting = False
        self.keeper: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Handshake, fetch, open and draw; show the refusal when there is one."""
        self.resize(self.width, self.height, self.ratio)
        try:
            opened = await self._load()
        except ComponentError as exc:
            self.fail(exc.code)
            return
        self.frame = render.Frame(
            self.config.product, opened.payload, self.config.license_id, opened.trace_id
        )
        started = time.perf_counter()
        if not self.draw():
            return
        self.timings["draw"] = _ms_since(started)
        self.emit("size", None, self.frame.height(self.width / self.ratio))
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
        self.session = session
        self.message = ("Loading data …", "", False)
        self.draw()
        started = time.perf_counter()
        async with self.requests:
            opened = await self._fetch(session)
        self.timings["data"] = _ms_since(started)
        return opened

    async def _fetch(self, session: ClientSession) -> Envelope:
        """The product, on the session (renewed first when about to end);
        the caller holds ``self.requests``."""
        if session.expires_ms - clock_ms() < RENEW_BEFORE_MS:
            await renew_session(self.transport, session, clock_ms)
        return await fetch_product(self.transport, session, self.config.product,
                                   clock_ms, hidden=self.hidden)

    async def keep_alive(
        self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    ) -> None:
        """Renew the session shortly before it ends while the component is
        mounted; a refusal replaces the view like any other."""
        while not self.closed and self.session is not None:
            session = self.session
            wait_ms = session.expires_ms - RENEW_BEFORE_MS - clock_ms()
            await sleep(max(wait_ms, MIN_RENEW_WAIT_MS) / 1000)
            if self.closed or session.expires_ms - clock_ms() >= RENEW_BEFORE_MS:
                continue
            before = session.expires_ms
            try:
                async with self.requests:
                    await renew_session(self.transport, session, clock_ms)
            except ComponentError as exc:
                left_ms = before - clock_ms()
                if exc.code in PASSING_CODES and left_ms > MIN_RENEW_WAIT_MS:
                    continue  # tried again after the shortest wait
                self.fail(exc.code)
                return
            if session.expires_ms == before:
                # At its longest life: it ends, and says so when it does.
                await sleep(max(0, before - clock_ms()) / 1000)
                if not self.closed:
                    self.fail("session_invalid")
                return

    def close(self) -> None:
        """The container went away: stop renewing."""
        self.closed = True
        if self.keeper is not None:
            self.keeper.cancel()

    async def refresh(self) -> None:
        """Fetch the product again on the open session and redraw it.

        A refusal (a suspended, frozen or revoked licence, an expired
        session) replaces the view with its message at this very request.
        """
        session = self.session
        if session is None or self.refresh_waiting:
            return
        product = self.config.product
        self.refresh_waiting = True
        try:
            await self.requests.acquire()
        finally:
            self.refresh_waiting = False
        try:
            opened = await self._fetch(session)
        except ComponentError as exc:
            self.fail(exc.code)
            return
        finally:
            self.requests.release()
        self.frame = render.Frame(
            product, opened.payload, self.config.license_id, opened.trace_id
        )
        self.draw()

    def fail(self, code: str) -> None:
        """Show the error on the canvas and tell the host page its code."""
        title = ERROR_MESSAGES.get(code, DEFAULT_ERROR)
        self.frame = None
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
        """Scroll by wheel steps (positive is down)."""
        if self.frame is not None and self.frame.scroll(steps):
            self.draw()

    def key(self, name: str) -> None:
        """Act on a navigation key."""
        if self.frame is not None and self.frame.key(name):
            self.draw()

    def click(self, x: float, y: float) -> None:
        """A click at (x, y) CSS pixels: tell the host page what it selected."""
        ref = self.frame.click(x, y) if self.frame is not None else None
        if ref is not None:
            self.emit("selection", ref)

    def draw(self) -> bool:
        """Draw one frame and remember its text; False if the data cannot be."""
        ctx = self.canvas.getContext("2d")
        ctx.setTransform(self.ratio, 0, 0, self.ratio, 0, 0)
        css_w, css_h = self.width / self.ratio, self.height / self.ratio
        if self.frame is None:
            title, detail, is_error = self.message
            options = {"theme": self.config.theme, "surface": self.surface}
            self.frame_text = render.render_message(
                ctx, css_w, css_h, options, title, detail, is_error
            )
            return True
        try:
            theme, ratio = self.config.theme, self.ratio
            self.frame_text = self.frame.draw(
                ctx, css_w, css_h, theme, ratio, self.surface
            )
        except render.PayloadError:
            self.fail("bad_payload")
            return False
        return True


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
    await run_mounted(int(instance), component)
    if component.session is not None and not component.closed:
        component.keeper = asyncio.ensure_future(component.keep_alive())


async def run_mounted(instance: int, component: Component) -> None:
    """Register ``component`` under ``instance``, then run it."""
    _components[instance] = component
    await component.run()


def unmount(instance: int) -> None:
    """Forget a component whose container went away."""
    component = _components.pop(int(instance), None)
    if component is not None:
        component.close()


async def refresh(instance: int) -> None:
    """Fetch a component's data again (the host page asked for it)."""
    component = _components.get(int(instance))
    if component is not None:
        await component.refresh()


def visibility(instance: int, hidden: bool) -> None:
    """The component's page was hidden or shown again."""
    component = _components.get(int(instance))
    if component is not None:
        component.hidden = bool(hidden)


def scroll(instance: int, steps: int) -> None:
    """Scroll a component by wheel steps (positive is down)."""
    component = _components.get(int(instance))
    if component is not None:
        component.scroll(int(steps))


def click(instance: int, x: float, y: float) -> None:
    """A click on a component's canvas at (x, y) CSS pixels."""
    component = _components.get(int(instance))
    if component is not None:
        component.click(float(x), float(y))


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
    import sys

    from xinfeng.sdk import sm2

    from . import client  # noqa: F401

    if sys.platform == "emscripten":
        # What BrowserTransport imports on its first request: pyodide.http
        # alone takes longer to import than a whole handshake.
        import pyodide.http  # type: ignore[import-not-found]  # noqa: F401
    sm2._SM2P256.g_comb()
    sm2._SM2P256.g_odd()


def after_restore() -> None:
    """Undo what a snapshot shares between every browser that restores it.

    The ``random`` module was seeded when the snapshot was made; reseed it
    from the browser's randomness (xinfeng draws keys from ``secrets``,
    which asks the browser each time, but other code may use ``random``).
    Files unpacked after the restore must be found by later imports: the
    path finders forget the directory listings they kept. (Not
    ``importlib.invalidate_caches()``: it imports ``importlib.metadata``,
    which takes longer than the rest of the start.)
    """
    import random
    import sys

    random.seed()
    for finder in list(sys.path_importer_cache.values()):
        invalidate = getattr(finder, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()
