"""Enveloped vs plaintext responses from the same Starlette route.

Starts one uvicorn server on 127.0.0.1 whose route answers either with the
msgpack payload as it is (the baseline a plaintext API would serve) or with
the same payload sealed into an envelope after checking the request's MAC,
exactly as ``/v1/data`` does (without the database round trips, which
benchmarks/bench_limiter.py and the audit benchmark measure). Both are
requested alternately over one keep-alive connection and the requests per
second are printed side by side with their ratio.

    python benchmarks/bench_envelope.py            # 1 KiB, 64 KiB, 1 MiB
    python benchmarks/bench_envelope.py --quick    # fewer requests, for CI
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xinfeng.sdk import envelope, wire
from xinfeng.server import api, native

SIZES = {"1 KiB": 1024, "64 KiB": 64 * 1024, "1 MiB": 1024 * 1024}
KEY = os.urandom(16)
SID = os.urandom(16)


def payload(size: int) -> dict[str, object]:
    return {"product": "bench", "rows": os.urandom(size)}


def make_app() -> Starlette:
    payloads = {size: payload(size) for size in SIZES.values()}

    async def route(request: Request) -> Response:
        size = int(request.path_params["size"])
        if request.path_params["mode"] == "plain":
            return Response(wire.pack(payloads[size]), media_type="application/msgpack")
        auth = envelope.RequestAuth.from_headers(request.headers)
        now = time.time_ns() // 1_000_000
        envelope.verify_request(
            auth,
            KEY,
            request.method,
            request.url.path,
            request.url.query,
            now,
            api.SUITE,
        )
        sealed = envelope.seal(KEY, auth.counter, payloads[size], suite=api.SUITE)
        return Response(sealed, media_type=api.ENVELOPE_TYPE)

    return Starlette(routes=[Route("/{mode}/{size}", route)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(make_app(), host="127.0.0.1", port=port, log_level="error")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def measure(client: httpx.Client, size: int, count: int) -> tuple[float, float]:
    session = envelope.ClientSession(SID, KEY, 0)
    elapsed = {"plain": 0.0, "sealed": 0.0}
    for _ in range(count):
        for mode in ("plain", "sealed"):
            path = f"/{mode}/{size}"
            headers = session.sign(
                "GET", path, "", time.time_ns() // 1_000_000
            ).headers()
            start = time.perf_counter()
            response = client.get(path, headers=headers)
            elapsed[mode] += time.perf_counter() - start
            response.raise_for_status()
    return count / elapsed["plain"], count / elapsed["sealed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few requests (CI)")
    parser.add_argument(
        "--requests",
        type=int,
        default=0,
        help="requests per route and size (default 300, quick 20)",
    )
    args = parser.parse_args()
    count = args.requests or (20 if args.quick else 300)
    port = free_port()
    server = serve(port)
    print(f"native backends: {native.backend_names()}")
    print(
        f"{'payload':>8} {'plaintext req/s':>16} {'enveloped req/s':>16} {'ratio':>6}"
    )
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for label, size in SIZES.items():
            n = max(5, count // (8 if size >= 1 << 20 else 1))
            plain, sealed = measure(client, size, n)
            print(f"{label:>8} {plain:16.1f} {sealed:16.1f} {sealed / plain:6.2f}")
    server.should_exit = True


if __name__ == "__main__":
    main()
