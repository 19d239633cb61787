"""What the component does with bytes that were changed on the way.

The test sits between the component's runtime and the provider and alters
responses; the component must refuse them, say so on the canvas, tell the
host page the error code, and draw no product data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from xinfeng.sdk.envelope import HEADER_SIZE

from .harness import Demo, browser_traffic, component_worker, frame_text, poll

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Mutation = Callable[[bytes], bytes]


def _slot_outcome(page: Any) -> str:
    return str(
        page.evaluate(
            "(() => { const s = document.querySelector('.xinfeng-slot');"
            " return s?.dataset.errorCode || (s?.dataset.readyMs ? 'ready' : ''); })()"
        )
    )


def _visit_with(
    browser: Any, demo: Demo, pattern: str, mutate: Mutation
) -> tuple[str, list[str]]:
    """Open the host page with responses matching ``pattern`` altered."""
    # The runtime's requests come from a SharedWorker, out of reach of
    # Playwright's own routing: the browser's DevTools alter them instead.
    context = browser.new_context()
    page = context.new_page()
    try:
        with browser_traffic(browser, pattern, mutate):
            page.goto(demo.host_url + "/")
            worker = component_worker(page)
            outcome = poll(lambda: _slot_outcome(page), timeout_s=90)
            return outcome, frame_text(worker)
    finally:
        context.close()


def flip(at: int) -> Mutation:
    def mutate(body: bytes) -> bytes:
        changed = bytearray(body)
        changed[at] ^= 0x01
        return bytes(changed)

    return mutate


ENVELOPE_MUTATIONS = {
    "ciphertext byte": flip(HEADER_SIZE + 100),
    "header counter": flip(11),
    "final tag": flip(-1),
    "truncated": lambda body: body[:-1000],
    "chunks swapped": lambda body: (
        body[:HEADER_SIZE]
        + body[HEADER_SIZE + 4096 : HEADER_SIZE + 8192]
        + body[HEADER_SIZE : HEADER_SIZE + 4096]
        + body[HEADER_SIZE + 8192 :]
    ),
}


@pytest.mark.parametrize("mutation", list(ENVELOPE_MUTATIONS))
def test_altered_envelope_is_refused_and_shows_no_data(
    browser: Any, demo: Demo, mutation: str
) -> None:
    outcome, texts = _visit_with(
        browser, demo, r"/v1/data/", ENVELOPE_MUTATIONS[mutation]
    )

    assert outcome == "bad_envelope"
    assert "data failed its integrity check" in texts
    assert not [t for t in texts if re.fullmatch(r"5\d{4}", t)]


def test_handshake_reply_not_signed_by_the_pinned_key_is_refused(
    browser: Any, demo: Demo
) -> None:
    outcome, texts = _visit_with(browser, demo, r"/v1/handshake$", flip(-3))

    assert outcome == "bad_handshake_reply"
    assert "server identity could not be verified" in texts


FORGE_TOKEN = (
    b"document.querySelectorAll('.xinfeng-slot')"
    b".forEach((slot) => { slot.dataset.token = 'not-a-token'; });\n"
)


def test_invalid_token_is_explained_on_the_canvas(browser: Any, demo: Demo) -> None:
    # The host script is altered, not the page: Chromium treats a document
    # Playwright fulfils as public and then blocks its loopback requests.
    outcome, texts = _visit_with(
        browser,
        demo,
        re.escape(demo.host_url) + r"/static/host\.js$",
        lambda script: FORGE_TOKEN + script,
    )

    assert outcome == "token_invalid"
    assert "embed token invalid or expired — reload the page" in texts
