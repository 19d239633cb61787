"""What the browser half needs: a pinned Pyodide and the component bundle.

Pyodide comes from the npm registry (``npm install``), pinned to one exact
version, and is served from the provider's own origin: no CDN. The
component bundle is a zip of the pure-Python code the Worker runs
(``xinfeng.sdk``, ``xinfeng.component`` and msgpack's pure-Python fallback),
unpacked by Pyodide into its site-packages. The bundle is deterministic, so
its SHA-256 and SM3 digests identify one build of the component.

A memory snapshot of Pyodide with the component's code already imported
lets a browser restore a ready interpreter instead of booting one. It is
built once per Pyodide build and component code (its name is the digest of
both), with Node.js and the pinned Pyodide's private snapshot API, from the
code alone: the generated module that pins the server key is not in it.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from xinfeng.sdk.sm3 import sm3_hash

PYODIDE_VERSION = "314.0.8"
PYODIDE_CORE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
MSGPACK_PURE_FILES = ("__init__.py", "exceptions.py", "ext.py", "fallback.py")
BUNDLE_PREFIX = "xinfeng-component-"
BUILD_MODULE = "xinfeng/component/_build.py"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

SNAPSHOT_MAKER = Path(__file__).resolve().with_name("snapshot.mjs")
# Bumped when what goes into a snapshot changes other than through the code.
SNAPSHOT_FORMAT = "xinfeng snapshot 3"
SNAPSHOT_TIMEOUT_S = 300
SNAPSHOTS_KEPT = 8
# A snapshot is the interpreter's whole memory; about half of its pages are
# zeros. The served form leaves them out (worker.js puts them back) and is
# gzipped: magic, page size, total length, run count, (first page, page
# count) per run of kept pages, all big-endian 32-bit, then the kept pages.
SNAPSHOT_MAGIC = b"XFSNAP1\n"
SNAPSHOT_PAGE = 4096

logger = logging.getLogger(__name__)


class AssetError(RuntimeError):
    """A browser asset could not be installed or is incomplete."""


@dataclass(frozen=True)
class ComponentBundle:
    """One built component bundle and the digests that name it.

    ``code_path`` is the same bundle without the module that pins the server
    key; its digest ``code_sha256_hex`` names the code a snapshot is made of.
    """

    path: Path
    sha256_hex: str
    sm3_hex: str
    code_path: Path
    code_sha256_hex: str

    @property
    def name(self) -> str:
        """The bundle's file name, ``xinfeng-component-<sha256 prefix>.zip``."""
        return self.path.name


def _pyodide_dir(cache_dir: Path) -> Path:
    return cache_dir / "pyodide" / "node_modules" / "pyodide"


def _missing_core_files(directory: Path) -> list[str]:
    return [name for name in PYODIDE_CORE_FILES if not (directory / name).is_file()]


def _installed_version(directory: Path) -> str | None:
    try:
        meta = json.loads((directory / "package.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return version if isinstance(version, str) else None


def ensure_pyodide(cache_dir: Path) -> Path:
    """Install the pinned Pyodide core under ``cache_dir`` and return its folder.

    Idempotent: a complete install of the pinned version is reused. Raises
    AssetError when npm is missing or fails, or files are missing afterwards.
    """
    directory = _pyodide_dir(cache_dir)
    if _installed_version(directory) == PYODIDE_VERSION and not _missing_core_files(
        directory
    ):
        return directory

    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("npm is needed to install Pyodide; install Node.js and npm")
    prefix = cache_dir / "pyodide"
    prefix.mkdir(parents=True, exist_ok=True)
    print(
        f"installing pyodide@{PYODIDE_VERSION} from npm into {prefix} ...", flush=True
    )
    cmd = [
        npm,
        "install",
        "--prefix",
        str(prefix),
        "--no-save",
        "--no-audit",
        "--no-fund",
        f"pyodide@{PYODIDE_VERSION}",
    ]
    if subprocess.run(cmd, check=False).returncode != 0:
        raise AssetError(f"npm install pyodide@{PYODIDE_VERSION} failed")

    missing = _missing_core_files(directory)
    if missing or _installed_version(directory) != PYODIDE_VERSION:
        raise AssetError(f"Pyodide install incomplete, missing: {missing}")
    print(f"pyodide {PYODIDE_VERSION} ready in {directory}", flush=True)
    return directory


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise AssetError(f"{name} is not installed")
    return Path(spec.origin).parent


def _build_module(server_public_key: bytes) -> bytes:
    if len(server_public_key) != 65 or server_public_key[0] != 0x04:
        raise AssetError("server public key must be 65 bytes, uncompressed")
    text = (
        '"""Generated at bundle build time: the pinned server key."""\n\n'
        f'SERVER_PUBLIC_KEY_HEX = "{server_public_key.hex()}"\n'
    )
    return text.encode("ascii")


def bundle_members(server_public_key: bytes) -> dict[str, bytes]:
    """Every file of the bundle by its path inside the zip."""
    members: dict[str, bytes] = {}
    for package in ("sdk", "component"):
        for source in sorted(_package_dir(f"xinfeng.{package}").glob("*.py")):
            members[f"xinfeng/{package}/{source.name}"] = source.read_bytes()
    msgpack_dir = _package_dir("msgpack")
    for name in MSGPACK_PURE_FILES:
        members[f"msgpack/{name}"] = (msgpack_dir / name).read_bytes()
    members[BUILD_MODULE] = _build_module(server_public_key)
    return members


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, members[name], compresslevel=9)
    return buffer.getvalue()


def _write_once(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def build_component_bundle(out_dir: Path, server_public_key: bytes) -> ComponentBundle:
    """Build the component zip into ``out_dir``; the same inputs give the same file.

    The file name carries the start of the SHA-256 digest, so browsers and
    caches can keep it forever. Raises AssetError for a malformed key.
    """
    members = bundle_members(server_public_key)
    data = _zip_bytes(members)
    code = _zip_bytes({k: v for k, v in members.items() if k != BUILD_MODULE})
    sha256_hex = hashlib.sha256(data).hexdigest()
    code_sha256_hex = hashlib.sha256(code).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{BUNDLE_PREFIX}{sha256_hex[:16]}.zip"
    code_path = out_dir / f"xinfeng-code-{code_sha256_hex[:16]}.zip"
    _write_once(path, data)
    _write_once(code_path, code)
    sm3_hex = sm3_hash(data).hex()
    return ComponentBundle(path, sha256_hex, sm3_hex, code_path, code_sha256_hex)


# -- the pinned Pyodide build and memory snapshots ------------------------------


@dataclass(frozen=True)
class PyodideBuild:
    """The pinned Pyodide core files and the digest of all of them."""

    directory: Path
    sha256_hex: str

    @property
    def tag(self) -> str:
        """A short name for this build, used in its files' addresses."""
        return self.sha256_hex[:16]


def pyodide_build(directory: Path) -> PyodideBuild:
    """Name the Pyodide core files in ``directory`` by their contents."""
    digest = hashlib.sha256()
    for name in PYODIDE_CORE_FILES:
        data = (directory / name).read_bytes()
        digest.update(name.encode() + b"\x00" + struct.pack(">Q", len(data)) + data)
    return PyodideBuild(directory, digest.hexdigest())


@dataclass(frozen=True)
class RuntimeSnapshot:
    """A packed, gzipped Pyodide memory snapshot and the digest of that file.

    Served as is (not with a content encoding): a browser then reads less
    from its cache and unpacks it itself, which is faster.
    """

    path: Path
    sha256_hex: str

    @property
    def name(self) -> str:
        return self.path.name


def snapshot_key(pyodide: PyodideBuild, bundle: ComponentBundle) -> str:
    """The digest that names the snapshot of this Pyodide build and code."""
    text = f"{SNAPSHOT_FORMAT}\n{pyodide.sha256_hex}\n{bundle.code_sha256_hex}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_snapshot(
    cache_dir: Path, pyodide: PyodideBuild, bundle: ComponentBundle
) -> RuntimeSnapshot | None:
    """The memory snapshot for this Pyodide build and component code.

    Built on first use (a few seconds) and kept under ``cache_dir``. Returns
    None, and logs why, when Node.js is missing or the build fails: the
    component then boots Pyodide without a snapshot.
    """
    directory = cache_dir / "snapshots"
    path = directory / f"runtime-{snapshot_key(pyodide, bundle)[:32]}.xfsnap.gz"
    digest_path = path.with_name(path.name + ".sha256")
    if not digest_path.is_file():
        try:
            _make_snapshot(pyodide, bundle.code_path, path)
        except AssetError as exc:
            logger.warning("no memory snapshot, components boot without: %s", exc)
            return None
        _prune_snapshots(directory)
    return RuntimeSnapshot(path, digest_path.read_text("ascii").strip())


def _make_snapshot(pyodide: PyodideBuild, code_path: Path, path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        raise AssetError("Node.js is needed to build memory snapshots")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "snapshot"
        cmd = [node, str(SNAPSHOT_MAKER), str(pyodide.directory), str(code_path)]
        cmd.append(str(raw))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        try:
            done = subprocess.run(
                cmd, env=env, capture_output=True, timeout=SNAPSHOT_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AssetError(f"snapshot build did not finish: {exc}") from exc
        if done.returncode != 0:
            raise AssetError(f"snapshot build failed: {done.stderr.decode()[-500:]}")
        _publish_snapshot(raw, path)


def pack_snapshot(raw: bytes) -> bytes:
    """``raw`` without its all-zero pages, in the served snapshot format."""
    page = SNAPSHOT_PAGE
    runs: list[list[int]] = []
    kept: list[bytes] = []
    zero = bytes(page)
    for index in range(-(-len(raw) // page)):
        chunk = raw[index * page : (index + 1) * page]
        if chunk == zero[: len(chunk)]:
            continue
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1][1] += 1
        else:
            runs.append([index, 1])
        kept.append(chunk.ljust(page, b"\x00"))
    header = SNAPSHOT_MAGIC + struct.pack(">III", page, len(raw), len(runs))
    table = b"".join(struct.pack(">II", first, count) for first, count in runs)
    return header + table + b"".join(kept)


def _publish_snapshot(raw: Path, path: Path) -> None:
    """Move a fresh snapshot into place, packed and gzipped, with its digest."""
    data = gzip.compress(pack_snapshot(raw.read_bytes()), compresslevel=6, mtime=0)
    packed = raw.with_name("packed.gz")
    packed.write_bytes(data)
    digest = raw.with_name("packed.sha256")
    digest.write_text(hashlib.sha256(data).hexdigest() + "\n", "ascii")
    packed.replace(path)
    digest.replace(path.with_name(path.name + ".sha256"))


def _prune_snapshots(directory: Path) -> None:
    """Keep the most recently built snapshots only."""
    digests = sorted(
        directory.glob("runtime-*.sha256"),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in digests[SNAPSHOTS_KEPT:]:
        old.with_name(old.name.removesuffix(".sha256")).unlink(missing_ok=True)
        old.unlink(missing_ok=True)
