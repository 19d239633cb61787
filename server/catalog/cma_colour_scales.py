"""cma-colour-scales: the official CMA colour scales that meteva ships.

Each ``meteva/resources/colormaps/*.txt`` file (the ``.bak`` copies left
out) lists ``value red green blue`` lines: the colour used from that value
upward. The product serves them as a legend service: every scale, with the
one named by ``scale`` first shown.
"""

from __future__ import annotations

import zipfile

from ..datasets import METEVA_VERSION, Wheels
from .spec import Derived, Payload, ProductSpec, Query, choice_param

PREFIX = "meteva/resources/colormaps/"
# What each scale colours, from its file name (meteva's naming).
TITLES = {
    "rain_1h": "1 h precipitation (mm)",
    "rain_3h": "3 h precipitation (mm)",
    "rain_24h": "24 h precipitation (mm)",
    "temp_2m": "2 m temperature (°C)",
    "rh": "relative humidity (%)",
    "tcdc": "total cloud cover (%)",
    "vis": "visibility (km)",
    "wind_speed": "wind speed (m/s)",
    "wind_speed_old": "wind speed, older scale (m/s)",
}


def _title(name: str) -> str:
    base = name.removesuffix("_error")
    title = TITLES.get(base, base)
    return f"{title}, error scale" if name.endswith("_error") else title


def parse_scale(text: str) -> list[list[float]]:
    """``[[value, r, g, b], ...]`` from one colour-scale file."""
    stops = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4:
            value, r, g, b = (float(f) for f in fields)
            stops.append([round(value, 3), round(r), round(g), round(b)])
    return stops


def derive(wheels: Wheels) -> Derived:
    with zipfile.ZipFile(wheels.meteva) as zf:
        names = sorted(
            n
            for n in zf.namelist()
            if n.startswith(PREFIX)
            and n.endswith(".txt")
            and not n.endswith(".bak.txt")
        )
        texts = {n: zf.read(n).decode("ascii") for n in names}
    scales = []
    for path, text in texts.items():
        name = path[len(PREFIX) :].removeprefix("color_").removesuffix(".txt")
        scales.append(
            {
                "name": name,
                "title": _title(name),
                "file": path.rsplit("/", 1)[1],
                "stops": parse_scale(text),
            }
        )
    return scales


def build(scales: Derived, query: Query) -> Payload:
    names = {s["name"] for s in scales}
    first = choice_param(query, "scale", "rain_24h", names)
    ordered = sorted(scales, key=lambda s: (s["name"] != first, s["name"]))
    return {
        "product": "cma-colour-scales",
        "kind": "scales",
        "title": "气象色标 CMA colour scales",
        "scales": ordered,
        "source": f"colormaps/*.txt, meteva {METEVA_VERSION}",
    }


SPEC = ProductSpec(
    "cma-colour-scales",
    "CMA colour-scale legends",
    1,
    f"meteva {METEVA_VERSION} (PyPI)",
    (PREFIX + "color_*.txt",),
    derive,
    build,
)
