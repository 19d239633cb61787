"""Map layers shared by the Guangdong products: the province outline and boxes."""

from __future__ import annotations

from ..datasets import Wheels
from . import shapes

MAPS = "meteva/resources/maps/"
PROVINCE_SHP = MAPS + "Province.shp"
COUNTY_SHP = MAPS + "BOUL_X.shp"
COUNTY_DBF = MAPS + "BOUL_X.dbf"
RIVER_SHP = MAPS + "hyd1_4p.shp"
RIVER_DBF = MAPS + "hyd1_4p.dbf"
BORDER_SHP = MAPS + "NationalBorder.shp"
WORLD_SHP = MAPS + "worldmap.shp"
# Province.dbf names no province (its only field is FID), so Guangdong is the
# polygon that contains Guangzhou's station (59287, 113.48°E 23.22°N).
GUANGZHOU = (113.48, 23.22)
GUANGDONG_BOX = (109.5, 20.0, 117.5, 25.7)


def guangdong_outline(wheels: Wheels) -> list[shapes.Ring]:
    """The rings of the Province layer's polygon that contains Guangzhou."""
    layer = shapes.read_shapes(wheels.read(wheels.meteva, PROVINCE_SHP))
    for shape in layer:
        if shape.rings and shapes.contains(shape.rings, *GUANGZHOU):
            return shape.rings
    raise shapes.ShapefileError("no province polygon contains Guangzhou")


def flat_rings(
    rings: list[shapes.Ring], tolerance: float, min_points: int = 4
) -> list[list[float]]:
    """Simplified rings as flat ``[lon, lat, ...]`` lists, dropping slivers."""
    out = []
    for ring in rings:
        simple = shapes.simplify(ring, tolerance)
        if len(simple) >= min_points:
            out.append(shapes.flatten(simple))
    return out


def layer_rings(
    wheels: Wheels,
    member: str,
    box: tuple[float, float, float, float],
    tolerance: float,
) -> list[list[float]]:
    """Every ring of a layer whose record overlaps ``box``, simplified."""
    rings: list[shapes.Ring] = []
    for shape in shapes.read_shapes(wheels.read(wheels.meteva, member)):
        if shape.rings and shapes.overlaps(shape.bbox, box):
            rings += shape.rings
    return flat_rings(rings, tolerance, min_points=2)
