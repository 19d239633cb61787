"""Shared fixtures: a provider app on a temporary data dir with a test clock."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from xinfeng.server.app import create_app
from xinfeng.server.cli import issue_license
from xinfeng.server.config import Config
from xinfeng.server.products import Catalog, Product
from xinfeng.server.registry import CatalogReview, approve_catalog_at

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("XINFENG_CACHE_DIR", REPO / ".cache" / "xinfeng"))
HOST_ORIGIN = "http://127.0.0.1:8001"
MARKER = "PLAINTEXT-MARKER-7f3a9c"


class Clock:
    """A settable clock in milliseconds, starting at the real time."""

    def __init__(self) -> None:
        self.ms = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def marker_payload(query: Any) -> dict[str, Any]:
    return {"product": "test-product", "rows": [[MARKER, 1.5, None]] * 3}


TEST_CATALOG = Catalog([
    Product("test-product", "Test product", 1, "tests", marker_payload),
    Product("other-product", "Other product", 1, "tests", marker_payload),
])
TEST_REVIEW = CatalogReview(
    owner="Test Provider", category="test data", region="440000",
    category_code="99", submitter="test-submitter",
    reviewers=("test-reviewer-1", "test-reviewer-2"), reason="approved for tests",
)


@dataclass
class Provider:
    client: TestClient
    clock: Clock
    data_dir: Path
    license_id: str
    credential: str
    app: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> Any:
        return self.app.state.xinfeng


def license_fields(clock: Clock, **overrides: Any) -> dict[str, Any]:
    now = clock() // 1000
    fields = {
        "licensee": "Test Licensee", "project": "test-project",
        "contract_id": "C-1", "scenario": "testing",
        "products": ("test-product",), "origins": (HOST_ORIGIN,),
        "networks": (), "not_before": now - 60, "not_after": now + 3600,
        "rate_per_minute": 1000, "rate_per_day": 100000, "max_sessions": 100,
    }
    fields.update(overrides)
    return fields


def make_provider(tmp_path: Path, browser_assets: bool = False,
                  **overrides: Any) -> Provider:
    clock = Clock()
    config = Config(data_dir=tmp_path / "data", cache_dir=CACHE_DIR,
                    public_url="http://127.0.0.1:8000", clock_ms=clock,
                    serve_browser_assets=browser_assets)
    app = create_app(config, catalog=TEST_CATALOG)
    asyncio.run(approve_catalog_at(config.data_dir, TEST_CATALOG, TEST_REVIEW))
    issued = asyncio.run(issue_license(config.data_dir,
                                       license_fields(clock, **overrides)))
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    return Provider(client, clock, config.data_dir, issued["license_id"],
                    issued["credential"], app)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    p = make_provider(tmp_path)
    with p.client:
        yield p
