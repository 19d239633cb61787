"""SM2 operations per second: xinfeng's pure Python next to OpenSSL and gmssl.

    python3 benchmarks/bench_sm2.py --quick     # under 20 s
    python3 benchmarks/bench_sm2.py --seconds 3

OpenSSL figures come from ``openssl speed sm2`` (sign and verify only; the
CLI has no SM2 keygen/encrypt/decrypt benchmark). The native column is the
server's signer, :class:`xinfeng.server.native_sm2.NativeSM2Signer`: the
same libcrypto driven through ctypes, one EVP_DigestSign per signature with
the user id set, DER out. All rates are per CPU second, as ``openssl
speed`` reports them. gmssl is PyPI gmssl, the other pure-Python SM2.
Ratios are xinfeng / other: above 1 means faster.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xinfeng.sdk import sm2
from xinfeng.sdk.sm2 import SM2PrivateKey, SM2PublicKey
from xinfeng.server.native_sm2 import NativeSM2Signer

MESSAGE = b"m" * 32
SESSION_KEY = b"k" * 16


@dataclass
class Row:
    name: str
    ours: float
    native: float | None = None
    openssl: float | None = None
    gmssl: float | None = None


def ops_per_second(operation: Callable[[], object], seconds: float) -> float:
    """Calls per CPU second of ``operation``, run for about ``seconds`` of CPU.

    CPU time, like ``openssl speed`` without ``-elapsed``, so that other
    load on a shared machine does not skew the ratios.
    """
    operation()
    count, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        operation()
        count += 1
        now = time.process_time()
        if now >= deadline:
            return count / (now - start)


def our_operations() -> dict[str, Callable[[], object]]:
    key = SM2PrivateKey.generate()
    public = key.public_key()
    point = public.to_bytes()
    signature = key.sign(MESSAGE)
    ciphertext = public.encrypt(SESSION_KEY)
    for _ in range(sm2._COMB_AFTER_USES + 1):
        public.verify(signature, MESSAGE)  # past the point where its table is built
    return {
        "keygen": lambda: SM2PrivateKey.generate().public_key(),
        "sign": lambda: key.sign(MESSAGE),
        "verify (long-lived key)": lambda: public.verify(signature, MESSAGE),
        "verify (new key object)": lambda: SM2PublicKey.from_bytes(point).verify(
            signature, MESSAGE
        ),
        "encrypt (new key object)": lambda: SM2PublicKey.from_bytes(point).encrypt(
            SESSION_KEY
        ),
        "decrypt": lambda: key.decrypt(ciphertext),
    }


def native_operations() -> dict[str, Callable[[], object]]:
    """The server's OpenSSL-backed signer, or nothing without libcrypto 3.x."""
    try:
        signer = NativeSM2Signer.from_private_key(SM2PrivateKey.generate())
    except (OSError, AttributeError):
        return {}
    return {"sign": lambda: signer.sign(MESSAGE)}


def gmssl_operations() -> dict[str, Callable[[], object]]:
    """The same operations with PyPI gmssl, or nothing if it is not installed."""
    try:
        gsm2: Any = importlib.import_module("gmssl.sm2")
    except ImportError:
        return {}
    key = _gmssl_friendly_key()
    crypt: Any = gsm2.CryptSM2(
        private_key=key.to_bytes().hex(),
        public_key=key.public_key().to_bytes()[1:].hex(),
        mode=1,
    )
    signature = crypt.sign_with_sm3(MESSAGE)
    ciphertext = crypt.encrypt(SESSION_KEY)
    d, g = int(crypt.private_key, 16), crypt.ecc_table["g"]
    verify = lambda: crypt.verify_with_sm3(signature, MESSAGE)  # noqa: E731
    return {
        "keygen": lambda: crypt._kg(d, g),
        "sign": lambda: crypt.sign_with_sm3(MESSAGE),
        "verify (long-lived key)": verify,
        "verify (new key object)": verify,
        "encrypt (new key object)": lambda: crypt.encrypt(SESSION_KEY),
        "decrypt": lambda: crypt.decrypt(ciphertext),
    }


def _gmssl_friendly_key() -> SM2PrivateKey:
    # gmssl strips a "04" prefix with str.lstrip, eating leading 0 and 4 digits.
    while True:
        key = SM2PrivateKey.generate()
        if key.public_key().to_bytes().hex()[2] not in "04":
            return key


def openssl_speed(seconds: int) -> tuple[float, float] | None:
    """(sign/s, verify/s) parsed from ``openssl speed -mr sm2``, or None."""
    if shutil.which("openssl") is None:
        return None
    command = ["openssl", "speed", "-mr", "-seconds", str(seconds), "sm2"]
    done = subprocess.run(command, capture_output=True, text=True)
    found = re.search(r"^\+F\d+:\d+:256:\w*SM2\w*:([\d.]+):([\d.]+)", done.stdout, re.M)
    if done.returncode != 0 or found is None:
        return None
    return float(found.group(1)), float(found.group(2))


def measure(seconds: float, with_gmssl: bool) -> list[Row]:
    rows = [
        Row(name, ops_per_second(op, seconds)) for name, op in our_operations().items()
    ]
    native = native_operations()
    others = gmssl_operations() if with_gmssl else {}
    for row in rows:
        if row.name in native:
            row.native = ops_per_second(native[row.name], seconds)
        if row.name in others:
            row.gmssl = ops_per_second(others[row.name], seconds / 2)
    speed = openssl_speed(max(1, round(seconds)))
    if speed is not None:
        for row in rows:
            if row.name == "sign":
                row.openssl = speed[0]
            elif row.name.startswith("verify"):
                row.openssl = speed[1]
    return rows


def cell(value: float | None, ratio_to: float | None = None) -> str:
    if value is None:
        return "n/a"
    if ratio_to is None:
        return f"{value:,.0f}"
    return f"{ratio_to / value:.2f}x"


def print_table(rows: list[Row]) -> None:
    header = ("operation", "xinfeng/s", "native/s", "openssl/s", "ratio", "gmssl/s")
    print("{:<26}{:>11}{:>11}{:>11}{:>8}{:>11}{:>9}".format(*header, "ratio"))
    for r in rows:
        print(
            f"{r.name:<26}{cell(r.ours):>11}{cell(r.native):>11}{cell(r.openssl):>11}"
            f"{cell(r.openssl, r.ours):>8}{cell(r.gmssl):>11}{cell(r.gmssl, r.ours):>9}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 15 s in all")
    parser.add_argument("--seconds", type=float, default=3.0, help="per operation")
    parser.add_argument("--no-gmssl", action="store_true", help="skip PyPI gmssl")
    args = parser.parse_args(argv)
    seconds = 0.8 if args.quick else args.seconds

    start = time.perf_counter()
    sm2._SM2P256.g_comb()
    print(f"fixed-base table for G built in {time.perf_counter() - start:.3f} s")
    print_table(measure(seconds, with_gmssl=not args.no_gmssl))
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
