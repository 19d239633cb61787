"""One runtime, many components: each its own canvas, session and frames.

The browser parts are replaced by small stand-ins (a canvas whose context
records nothing, a transport that answers like the provider with the same
envelope code), so the runtime's bookkeeping runs on CPython.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from xinfeng.component import runtime
from xinfeng.component.client import HttpReply
from xinfeng.sdk import envelope
from xinfeng.sdk.sm2 import SM2PrivateKey, SM2PublicKey

SERVER_KEY = SM2PrivateKey.generate()
SESSION_MS = 600_000
PAYLOAD = {
    "columns": ["id", "county", "lon", "lat", "alt"],
    "rows": [[f"5{i:04d}", f"county {i}", 113.0 + i / 100, 23.0, 10.0 * i]
             for i in range(40)],
    "source": "test rows",
}  # fmt: skip


class Context:
    """A 2D context that accepts every call and property."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


class Surface:
    """Bitmaps and pixels without a browser."""

    def bitmap(self, rgba: bytes, width: int, height: int) -> Any:
        return object()

    def path(self, svg: str) -> Any:
        return svg

    def read_pixels(self, ctx: Any, width: int, height: int) -> bytearray:
        return bytearray(4 * width * height)

    def write_pixels(self, ctx: Any, width: int, height: int, px: bytearray) -> None:
        return None


class Canvas:
    width = 0
    height = 0

    def getContext(self, kind: str) -> Context:  # noqa: N802 (the DOM's name)
        return Context()


class Provider:
    """Answers handshakes and data requests as the server would."""

    def __init__(self) -> None:
        self.sessions: dict[bytes, bytes] = {}
        self.data_headers: list[Mapping[str, str]] = []
        self.renewals = 0

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpReply:
        now = int(time.time() * 1000)
        if path == "/v1/handshake":
            assert body is not None
            request = envelope.parse_handshake(body, now)
            sid, key = envelope.new_session_secrets()
            self.sessions[sid] = key
            reply = envelope.sign_handshake_reply(
                request, SERVER_KEY, sid, key, now + SESSION_MS, now
            )
            return HttpReply(200, reply)
        auth = envelope.RequestAuth.from_headers(
            {k.lower(): v for k, v in headers.items()}
        )
        if path == "/v1/renew":
            self.renewals += 1
            renewed = {"expires_ms": now + SESSION_MS}
            return HttpReply(200, envelope.seal(self.sessions[auth.session_id],
                                                auth.counter, renewed))
        self.data_headers.append(dict(headers))
        return HttpReply(
            200, envelope.seal(self.sessions[auth.session_id], auth.counter, PAYLOAD)
        )


def component(events: list[tuple[Any, ...]], token: str) -> runtime.Component:
    config = runtime.ComponentConfig.from_mapping(
        {"token": token, "license": "lic-test", "product": "gd-stations",
         "build": "00" * 32, "options": {"width": 800, "height": 560}}
    )  # fmt: skip

    def pinned() -> SM2PublicKey:
        return SERVER_KEY.public_key()

    emit = lambda *event: events.append(event)  # noqa: E731
    return runtime.Component(Canvas(), config, emit, Provider(), pinned, Surface())


def traces(texts: list[str]) -> set[str]:
    return {t.rsplit(" ", 1)[1] for t in texts if t.startswith("licence lic-test")}


def test_two_components_share_the_runtime_but_not_their_sessions() -> None:
    events: list[tuple[Any, ...]] = []

    async def mount_two() -> None:
        await asyncio.gather(
            runtime.run_mounted(101, component(events, "token-a")),
            runtime.run_mounted(102, component(events, "token-b")),
        )

    asyncio.run(mount_two())
    try:
        first, second = runtime.frame_text(101), runtime.frame_text(102)

        assert runtime.mounted() >= 2
        assert [e for e in events if e[0] == "ready"] == [("ready",), ("ready",)]
        assert len(traces(first)) == len(traces(second)) == 1
        assert traces(first) != traces(second)
        assert {"handshake", "data", "draw"} <= set(runtime.timings(101))
    finally:
        runtime.unmount(101)
        runtime.unmount(102)


def test_input_reaches_only_its_own_component() -> None:
    events: list[tuple[Any, ...]] = []
    asyncio.run(runtime.run_mounted(201, component(events, "token-c")))
    asyncio.run(runtime.run_mounted(202, component(events, "token-d")))
    try:
        before = runtime.frame_text(202)
        runtime.key(201, "End")

        assert runtime.frame_text(201) != before
        assert runtime.frame_text(202) == before
    finally:
        runtime.unmount(201)
        runtime.unmount(202)


def test_an_unmounted_component_is_forgotten() -> None:
    asyncio.run(runtime.run_mounted(301, component([], "token-e")))
    runtime.unmount(301)

    assert runtime.frame_text(301) == []
    assert runtime.timings(301) == {}
    runtime.scroll(301, 3)  # input for a gone component is ignored


def test_a_refused_handshake_draws_the_reason_and_reports_its_code() -> None:
    events: list[tuple[Any, ...]] = []
    refused = component(events, "token-f")

    async def refuse(*args: Any) -> HttpReply:
        body = b'{"error": {"code": "origin_denied", "message": "no"}}'
        return HttpReply(403, body)

    refused.transport.request = refuse  # type: ignore[method-assign]
    asyncio.run(runtime.run_mounted(401, refused))
    try:
        assert ("error", "origin_denied") in events
        assert "licence not valid for this site" in runtime.frame_text(401)
    finally:
        runtime.unmount(401)


def test_a_click_on_an_item_tells_the_host_its_reference_only() -> None:
    events: list[tuple[Any, ...]] = []
    clicked = component(events, "token-g")
    asyncio.run(runtime.run_mounted(501, clicked))
    try:
        assert clicked.frame is not None
        box, ref = clicked.frame.view.targets[0]
        runtime.click(501, box.x + box.w / 2, box.y + box.h / 2)
        runtime.click(501, -10, -10)

        assert [e for e in events if e[0] == "selection"] == [("selection", ref)]
    finally:
        runtime.unmount(501)


def test_data_requests_made_while_the_page_is_hidden_say_so() -> None:
    mounted = component([], "token-h")
    asyncio.run(runtime.run_mounted(501, mounted))
    try:
        runtime.visibility(501, True)
        asyncio.run(runtime.refresh(501))
        runtime.visibility(501, False)
        asyncio.run(runtime.refresh(501))
    finally:
        runtime.unmount(501)
    seen = [h.get(envelope.HIDDEN_HEADER) for h in mounted.transport.data_headers]
    assert seen == [None, "1", None]


def test_a_session_about_to_end_is_renewed_before_the_next_request() -> None:
    mounted = component([], "token-i")
    asyncio.run(runtime.run_mounted(601, mounted))
    try:
        assert mounted.session is not None
        mounted.session.expires_ms = runtime.clock_ms() + 30_000
        asyncio.run(runtime.refresh(601))
        assert mounted.transport.renewals == 1
        assert mounted.session.expires_ms > runtime.clock_ms() + 500_000
        asyncio.run(runtime.refresh(601))
        assert mounted.transport.renewals == 1
    finally:
        runtime.unmount(601)


def test_keep_alive_renews_near_the_end_and_stops_at_a_refusal() -> None:
    events: list[tuple[Any, ...]] = []
    mounted = component(events, "token-j")
    asyncio.run(runtime.run_mounted(701, mounted))
    session = mounted.session
    assert session is not None
    waits: list[float] = []

    async def refuse(*args: Any) -> HttpReply:
        return HttpReply(403, b'{"error": {"code": "license_suspended"}}')

    async def time_passes(seconds: float) -> None:
        # Each wait ends 30 s before the session does; the second renewal
        # finds the licence suspended.
        waits.append(seconds)
        session.expires_ms = runtime.clock_ms() + 30_000
        if len(waits) == 2:
            mounted.transport.request = refuse  # type: ignore[method-assign]

    asyncio.run(mounted.keep_alive(time_passes))
    runtime.unmount(701)
    assert mounted.transport.renewals == 1
    assert 530 < waits[0] <= 540 and waits[1] >= 530
    assert events[-1] == ("error", "license_suspended")
    assert "licence suspended" in mounted.frame_text


def test_keep_alive_ends_when_the_component_is_unmounted() -> None:
    mounted = component([], "token-k")
    asyncio.run(runtime.run_mounted(801, mounted))
    slept: list[float] = []

    async def unmounted_meanwhile(seconds: float) -> None:
        slept.append(seconds)
        runtime.unmount(801)

    asyncio.run(mounted.keep_alive(unmounted_meanwhile))
    assert slept and mounted.closed and mounted.transport.renewals == 0


def test_refreshes_asked_for_during_a_request_fold_into_one() -> None:
    mounted = component([], "token-l")
    asyncio.run(runtime.run_mounted(901, mounted))
    answer = mounted.transport.request

    async def slow(*args: Any) -> HttpReply:
        await asyncio.sleep(0.02)
        return await answer(*args)

    mounted.transport.request = slow  # type: ignore[method-assign]

    async def click_five_times() -> None:
        await asyncio.gather(*(runtime.refresh(901) for _ in range(5)))

    try:
        asyncio.run(click_five_times())
    finally:
        runtime.unmount(901)
    # The first load, one refresh in flight and one waiting behind it.
    assert len(mounted.transport.data_headers) == 3
    assert mounted.frame is not None


def test_keep_alive_shows_the_end_of_a_session_at_its_longest_life() -> None:
    events: list[tuple[Any, ...]] = []
    mounted = component(events, "token-m")
    asyncio.run(runtime.run_mounted(1001, mounted))
    session = mounted.session
    assert session is not None
    end = runtime.clock_ms() + 30_000
    slept: list[float] = []

    async def renew_to_the_same_end(*args: Any) -> HttpReply:
        auth = envelope.RequestAuth.from_headers(
            {k.lower(): v for k, v in args[2].items()})
        key = mounted.transport.sessions[auth.session_id]
        return HttpReply(200, envelope.seal(key, auth.counter, {"expires_ms": end}))

    async def time_passes(seconds: float) -> None:
        slept.append(seconds)
        session.expires_ms = end

    mounted.transport.request = renew_to_the_same_end  # type: ignore[method-assign]
    asyncio.run(mounted.keep_alive(time_passes))
    runtime.unmount(1001)
    assert events[-1] == ("error", "session_invalid")
    assert len(slept) == 2 and 25 < slept[1] <= 30


def test_keep_alive_tries_again_after_a_passing_failure() -> None:
    events: list[tuple[Any, ...]] = []
    mounted = component(events, "token-n")
    asyncio.run(runtime.run_mounted(1101, mounted))
    session = mounted.session
    assert session is not None
    answer = mounted.transport.request
    answers = iter([HttpReply(503, b'{"error": {"code": "unavailable"}}')])

    async def once_unavailable(*args: Any) -> HttpReply:
        return next(answers, None) or await answer(*args)

    slept: list[float] = []

    async def time_passes(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) <= 2:
            session.expires_ms = runtime.clock_ms() + 30_000
        else:
            runtime.unmount(1101)

    mounted.transport.request = once_unavailable  # type: ignore[method-assign]
    asyncio.run(mounted.keep_alive(time_passes))
    assert mounted.transport.renewals == 1
    assert [e for e in events if e[0] == "error"] == []
    assert slept[1] == runtime.MIN_RENEW_WAIT_MS / 1000
