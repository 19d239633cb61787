"""Throughput of SM4-CTR, SM3 and HMAC-SM3: pure Python, lanes, native, OpenSSL.

Prints one table in MB/s (10**6 bytes per second, best of several runs):

- pure, one at a time: SM4 block-at-a-time with T-tables; SM3 one message
  at a time;
- pure, lanes: SM4-CTR with every block of the message at once; SM3 and
  HMAC-SM3 over many messages at once (16 chunks of 4 KiB, as the envelope
  MACs them);
- native: OpenSSL through ``cryptography`` (SM4) and ``hashlib``/``hmac``
  (SM3), as ``xinfeng.server.native`` uses them;
- ``openssl speed``: the CLI's own figure for the same primitive.

    python3 benchmarks/bench_symmetric.py            # ~1 minute
    python3 benchmarks/bench_symmetric.py --quick    # CI, well under 20 s
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from xinfeng.sdk import sm3, sm4
from xinfeng.server.native import select_backend

CHUNK = 4096
CHUNKS = 16


@dataclass
class Row:
    """One primitive measured every way; None where a way does not exist."""

    name: str
    single: float | None
    lanes: float | None
    native: float | None
    openssl: float | None


def throughput(work: Callable[[], object], nbytes: int, budget: float) -> float:
    """MB/s of the fastest of as many runs of ``work`` as fit in ``budget`` s."""
    best, deadline = float("inf"), time.perf_counter() + budget
    runs = 0
    while runs < 2 or (time.perf_counter() < deadline and runs < 1000):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return nbytes / best / 1e6


@contextmanager
def block_at_a_time() -> Iterator[None]:
    """Make the pure SM4 use its T-table engine for every input size."""
    saved = sm4._LANE_MIN_BLOCKS
    sm4._LANE_MIN_BLOCKS = 1 << 62
    try:
        yield
    finally:
        sm4._LANE_MIN_BLOCKS = saved


def openssl_speed(kind: str, algorithm: str, size: int, seconds: int) -> float | None:
    """MB/s that ``openssl speed`` reports for ``size``-byte inputs, if it runs."""
    if shutil.which("openssl") is None:
        return None
    args = ["openssl", "speed", kind, algorithm, "-bytes", str(size), "-mr"]
    run = subprocess.run(
        [*args, "-seconds", str(seconds)], capture_output=True, text=True
    )
    for line in run.stdout.splitlines():
        if line.startswith("+F:"):
            return float(line.rsplit(":", 1)[1]) / 1e6
    return None


def sm4_ctr_row(size: int, budget: float, seconds: int) -> Row:
    key, iv, data = os.urandom(16), os.urandom(16), os.urandom(size)
    native = select_backend()
    with block_at_a_time():
        single = throughput(lambda: sm4.sm4_ctr(key, iv, data), size, budget)
    lanes = throughput(lambda: sm4.sm4_ctr(key, iv, data), size, budget)
    fast = None
    if native.names["sm4_ctr"] != "pure":
        fast = throughput(lambda: native.sm4_ctr(key, iv, data), size, budget)
    speed = openssl_speed("-evp", "sm4-ctr", size, seconds)
    return Row(f"SM4-CTR, one {size // 1024} KiB message", single, lanes, fast, speed)


def sm3_row(size: int, budget: float, seconds: int) -> Row:
    data, native = os.urandom(size), select_backend()
    single = throughput(lambda: sm3.sm3_hash(data), size, budget)
    fast = None
    if native.names["sm3"] != "pure":
        fast = throughput(lambda: native.sm3_hash(data), size, budget)
    speed = openssl_speed("-evp", "sm3", size, seconds)
    return Row(f"SM3, one {size // 1024} KiB message", single, None, fast, speed)


def sm3_lanes_row(budget: float, seconds: int) -> Row:
    chunks = [os.urandom(CHUNK) for _ in range(CHUNKS)]
    nbytes, native = CHUNK * CHUNKS, select_backend()
    single = throughput(lambda: [sm3.sm3_hash(c) for c in chunks], nbytes, budget)
    lanes = throughput(lambda: sm3.sm3_hash_lanes(chunks), nbytes, budget)
    fast = None
    if native.names["sm3"] != "pure":
        fast = throughput(lambda: [native.sm3_hash(c) for c in chunks], nbytes, budget)
    speed = openssl_speed("-evp", "sm3", CHUNK, seconds)
    return Row(f"SM3, {CHUNKS} x 4 KiB chunks", single, lanes, fast, speed)


def hmac_lanes_row(budget: float, seconds: int) -> Row:
    key, chunks = os.urandom(32), [os.urandom(CHUNK) for _ in range(CHUNKS)]
    nbytes, native = CHUNK * CHUNKS, select_backend()

    def one_at_a_time() -> list[bytes]:
        return [sm3.hmac_sm3(key, c) for c in chunks]

    single = throughput(one_at_a_time, nbytes, budget)
    lanes = throughput(lambda: sm3.hmac_sm3_lanes(key, chunks), nbytes, budget)
    fast = None
    if native.names["hmac_sm3"] != "pure":
        fast = throughput(lambda: native.hmac_sm3_lanes(key, chunks), nbytes, budget)
    speed = openssl_speed("-hmac", "sm3", CHUNK, seconds)
    return Row(f"HMAC-SM3, {CHUNKS} x 4 KiB chunks", single, lanes, fast, speed)


def _cell(value: float | None) -> str:
    return f"{value:10.2f}" if value is not None else f"{'-':>10}"


def _ratio(top: float | None, bottom: float | None) -> str:
    if top is None or bottom is None:
        return f"{'-':>8}"
    return f"{top / bottom:7.1f}x"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'MB/s':34}{'pure 1x1':>10}{'pure lanes':>11}{'native':>10}"
        f"{'openssl':>10}{'lanes/1x1':>10}{'native/py':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        fastest_pure = max(v for v in (row.single, row.lanes) if v is not None)
        print(
            f"{row.name:34}{_cell(row.single)} {_cell(row.lanes)}"
            f"{_cell(row.native)}{_cell(row.openssl)}"
            f"  {_ratio(row.lanes, row.single)}  {_ratio(row.native, fastest_pure)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs for CI")
    args = parser.parse_args()
    budget, seconds = (0.3, 1) if args.quick else (2.0, 3)
    size = 16384 if args.quick else 65536
    rows = [
        sm4_ctr_row(size, budget, seconds),
        sm3_row(size, budget, seconds),
        sm3_lanes_row(budget, seconds),
        hmac_lanes_row(budget, seconds),
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
