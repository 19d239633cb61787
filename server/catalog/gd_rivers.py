"""gd-rivers: rivers and lakes of the Xi Jiang / Pearl River region.

From meteva's 1:4M hydrography polygons (``hyd1_4p``): every river, lake
and river-island polygon overlapping South China, with the province
outlines for orientation. The layer has polygons only (wide rivers drawn
as areas), so narrow rivers are not in it and are not shown.
"""

from __future__ import annotations

from typing import Any

from ..datasets import METEVA_VERSION, Wheels
from . import geo, shapes
from .spec import Derived, Payload, ProductSpec, Query, first_page

BOX = (108.0, 20.0, 117.5, 26.0)
# Feature classes as the layer uses its GBCODE field: polygons coded 21012
# are named 黄河 and 长江, 23010 are named lakes (太湖, 洪泽湖 ...), and
# 79200 are small polygons lying inside the river polygons.
CLASSES = {"21012": "river", "23010": "lake", "22011": "reservoir", "79200": "island"}
ROWS_PER_PAGE = 12


def derive(wheels: Wheels) -> Derived:
    layer = shapes.read_shapes(wheels.read(wheels.meteva, geo.RIVER_SHP))
    table = shapes.read_dbf(wheels.read(wheels.meteva, geo.RIVER_DBF))
    outline = geo.guangdong_outline(wheels)
    features = [
        _feature(shape, row, outline)
        for shape, row in zip(layer, table, strict=True)
        if shape.rings and shapes.overlaps(shape.bbox, BOX)
    ]
    return {
        "features": features,
        "provinces": geo.layer_rings(wheels, geo.PROVINCE_SHP, BOX, 0.01),
        "outline": geo.flat_rings(outline, 0.01),
    }


def _feature(
    shape: shapes.Shape, row: dict[str, str], outline: list[shapes.Ring]
) -> dict[str, Any]:
    lon = (shape.bbox[0] + shape.bbox[2]) / 2
    lat = (shape.bbox[1] + shape.bbox[3]) / 2
    return {
        "code": row["GBCODE"],
        "class": CLASSES.get(row["GBCODE"], "other"),
        "name": row["NAME"],
        "area_km2": round(sum(shapes.ring_area_km2(r) for r in shape.rings), 1),
        "in_guangdong": shapes.contains(outline, lon, lat),
        "rings": geo.flat_rings(shape.rings, 0.002, min_points=3),
    }


def build(derived: Derived, query: Query) -> Payload:
    features = derived["features"]
    rows = sorted(
        (
            [
                f["class"],
                f["code"],
                f["area_km2"],
                "yes" if f["in_guangdong"] else "no",
            ]
            for f in features
        ),
        key=lambda r: -r[2],
    )
    return {
        "product": "gd-rivers",
        "kind": "rivers",
        "title": "珠江水系 Rivers and lakes, Xi Jiang / Pearl River",
        "box": list(BOX),
        "features": [{k: f[k] for k in ("class", "rings")} for f in features],
        "provinces": derived["provinces"],
        "outline": derived["outline"],
        "columns": ["class", "GB code", "area km²", "in Guangdong"],
        "rows": rows,
        **first_page(rows, query, ROWS_PER_PAGE),
        "source": f"1:4M hydrography (hyd1_4p), meteva {METEVA_VERSION}",
    }


SPEC = ProductSpec(
    "gd-rivers",
    "Rivers and lakes of the Pearl River region",
    1,
    f"meteva {METEVA_VERSION} (PyPI)",
    (geo.RIVER_SHP, geo.RIVER_DBF, geo.PROVINCE_SHP),
    derive,
    build,
)
