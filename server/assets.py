"""What the browser half needs: a pinned Pyodide and the component bundle.

Pyodide comes from the npm registry (``npm install``), pinned to one exact
version, and is served from the provider's own origin: no CDN. The
component bundle is a zip of the pure-Python code the Worker runs
(``xinfeng.sdk``, ``xinfeng.component`` and msgpack's pure-Python fallback),
unpacked by Pyodide into its site-packages. The bundle is deterministic, so
its SHA-256 and SM3 digests identify one build of the component.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import subprocess
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
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class AssetError(RuntimeError):
    """A browser asset could not be installed or is incomplete."""


@dataclass(frozen=True)
class ComponentBundle:
    """One built component bundle and the digests that name it."""

    path: Path
    sha256_hex: str
    sm3_hex: str

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
    members["xinfeng/component/_build.py"] = _build_module(server_public_key)
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


def build_component_bundle(out_dir: Path, server_public_key: bytes) -> ComponentBundle:
    """Build the component zip into ``out_dir``; the same inputs give the same file.

    The file name carries the start of the SHA-256 digest, so browsers and
    caches can keep it forever. Raises AssetError for a malformed key.
    """
    data = _zip_bytes(bundle_members(server_public_key))
    sha256_hex = hashlib.sha256(data).hexdigest()
    sm3_hex = sm3_hash(data).hex()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{BUNDLE_PREFIX}{sha256_hex[:16]}.zip"
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return ComponentBundle(path, sha256_hex, sm3_hex)
