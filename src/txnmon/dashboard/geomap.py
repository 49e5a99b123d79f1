"""The geographic heatmap: country and U.S. state outlines under revenue and alerts per city.

The outlines are TopoJSON vendored from npm (world-atlas, us-atlas: bin/vendor-map-outlines) in
src/txnmon/data/maps/, checked against their sha256 in manifest.json when first read, and inlined into
the chart, so the map needs no tile server and no network when the page is viewed. Only the outlines
the view shows are inlined (`subset`): the page refreshes every few seconds, and the world's outlines
are about 1 MB of JSON where a view of India needs about 130 KB. Cities get their
coordinates from the gazetteer (txnmon.core.geo, src/txnmon/data/gazetteer/: GeoNames cities over
15,000 people); the view is fitted to the cities with data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

MAPS_DIR = Path(__file__).resolve().parents[1] / "data" / "maps"
WIDTH, HEIGHT = 1000, 520
FOCUS_SHARE = 0.95  # "main market" fits the view to the cities holding this share of revenue
MIN_SPAN_DEG = 12.0  # a single city still shows its surroundings


class OutlineError(RuntimeError):
    """A vendored outline file is missing or not the one its manifest names (re-run bin/vendor-map-outlines)."""


@functools.cache
def outlines(name: str) -> dict[str, Any]:
    manifest = json.loads((MAPS_DIR / "manifest.json").read_text())
    entry = manifest.get(name)
    path = MAPS_DIR / name
    if entry is None or not path.is_file():
        raise OutlineError(f"{path} is not vendored: run bin/vendor-map-outlines")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise OutlineError(f"{path} does not match its sha256 in manifest.json: run bin/vendor-map-outlines")
    return json.loads(data)


BBox = tuple[float, float, float, float]  # west, south, east, north in degrees


@functools.lru_cache(maxsize=4)
def _file_arc_boxes(name: str) -> list[BBox]:
    return _arc_boxes(outlines(name))


def _arc_boxes(topology: dict[str, Any]) -> list[BBox]:
    """Each arc's bounding box in degrees (arcs are delta-encoded, quantised by the topology's transform)."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    boxes = []
    for arc in topology["arcs"]:
        x = y = 0
        xs, ys = [], []
        for dx, dy in arc:
            x += dx
            y += dy
            xs.append(x)
            ys.append(y)
        boxes.append((min(xs) * sx + tx, min(ys) * sy + ty, max(xs) * sx + tx, max(ys) * sy + ty))
    return boxes


def _arc_ids(arcs: Any) -> Iterator[int]:
    """The arc indexes a geometry's (nested) `arcs` reference; ~i (negative) is arc i reversed."""
    if isinstance(arcs, int):
        yield arcs if arcs >= 0 else ~arcs
    else:
        for part in arcs:
            yield from _arc_ids(part)


def _renumbered(arcs: Any, new: dict[int, int]) -> Any:
    if isinstance(arcs, int):
        return new[arcs] if arcs >= 0 else ~new[~arcs]
    return [_renumbered(part, new) for part in arcs]


def subset(topology: dict[str, Any], name: str, view: BBox, boxes: list[BBox] | None = None) -> dict[str, Any]:
    """The topology with only object `name`'s geometries whose box meets `view`, and only their arcs
    (`boxes`: the arcs' boxes, if already known).

    A view of one country's cities needs its neighbours, not the world. A polygon is kept or dropped
    whole (the chart clips what leaves the view), so shared borders stay exact; of a multipolygon only
    the polygons in view are kept."""
    boxes = boxes if boxes is not None else _arc_boxes(topology)
    west, south, east, north = view

    def seen(arcs: Any) -> bool:
        ids = set(_arc_ids(arcs))
        return bool(ids) and (min(boxes[i][0] for i in ids) <= east and max(boxes[i][2] for i in ids) >= west
                              and min(boxes[i][1] for i in ids) <= north and max(boxes[i][3] for i in ids) >= south)

    kept: list[dict[str, Any]] = []
    for geometry in topology["objects"][name]["geometries"]:
        arcs = geometry.get("arcs") or []
        if geometry.get("type") == "MultiPolygon":  # a country's far islands or exclaves: only the parts in view
            arcs = [polygon for polygon in arcs if seen(polygon)]
        if arcs and seen(arcs):
            kept.append({**geometry, "arcs": arcs})
    used = sorted({i for g in kept for i in _arc_ids(g["arcs"])})
    new = {old: i for i, old in enumerate(used)}
    return {"type": "Topology", "transform": topology["transform"], "arcs": [topology["arcs"][i] for i in used],
            "objects": {name: {"type": "GeometryCollection",
                               "geometries": [{**g, "arcs": _renumbered(g["arcs"], new)} for g in kept]}}}


def visible_box(projection: dict[str, Any], width: int = WIDTH, height: int = HEIGHT, margin: float = 0.1) -> BBox:
    """What a fitted Mercator projection shows, in degrees, with `margin` of its size added on every side."""
    scale, (lon, lat) = projection["scale"], projection["center"]
    half_x = math.degrees(width / 2 / scale) * (1 + 2 * margin)
    y = _mercator_y(lat)
    half_y = height / 2 / scale * (1 + 2 * margin)

    def lat_of(merc: float) -> float:
        return math.degrees(2 * math.atan(math.exp(merc)) - math.pi / 2)

    return (lon - half_x, lat_of(y - half_y), lon + half_x, lat_of(y + half_y))


@functools.lru_cache(maxsize=32)
def outlines_in(name: str, objects: str, view: BBox) -> dict[str, Any]:
    """`subset` of a vendored outline file, cached per view (the view changes only with the cities)."""
    return subset(outlines(name), objects, view, _file_arc_boxes(name))


def _mercator_y(lat: float) -> float:
    lat = max(min(lat, 85.0), -85.0)
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def fitted_projection(lons: list[float], lats: list[float], width: int = WIDTH, height: int = HEIGHT,
                      pad: float = 0.2) -> dict[str, Any]:
    """A Mercator projection (d3's scale, center, translate) that shows every point with a margin."""
    west, east, south, north = min(lons), max(lons), min(lats), max(lats)
    if east - west < MIN_SPAN_DEG:
        mid = (east + west) / 2
        west, east = mid - MIN_SPAN_DEG / 2, mid + MIN_SPAN_DEG / 2
    if north - south < MIN_SPAN_DEG:
        mid = (north + south) / 2
        south, north = mid - MIN_SPAN_DEG / 2, mid + MIN_SPAN_DEG / 2
    x_span = math.radians(east - west) * (1 + 2 * pad)
    y_low, y_high = _mercator_y(south), _mercator_y(north)
    y_span = (y_high - y_low) * (1 + 2 * pad)
    scale = min(width / x_span, height / y_span)
    center_lat = math.degrees(2 * math.atan(math.exp((y_low + y_high) / 2)) - math.pi / 2)
    return {"type": "mercator", "scale": scale, "center": [(east + west) / 2, center_lat],
            "translate": [width / 2, height / 2]}


def focus(located: pd.DataFrame, world: bool) -> pd.DataFrame:
    """The cities the view is fitted to: all of them, or those holding FOCUS_SHARE of the revenue."""
    if world or located["revenue"].sum() <= 0:
        return located
    ranked = located.sort_values("revenue", ascending=False)
    share = ranked["revenue"].cumsum() / ranked["revenue"].sum()
    return ranked[(share.shift(fill_value=0) < FOCUS_SHARE)]


def heatmap(frame: pd.DataFrame, labels: int = 10, world: bool = False) -> alt.LayerChart:
    """Outlines, then one circle per located city (area and colour: revenue), a red ring sized by its
    alerts, and the names of the `labels` cities with the most revenue. The view fits the main market
    (or, with `world`, every city)."""
    located = frame.dropna(subset=["lat", "lon"]).sort_values("revenue", ascending=False)
    fitted = focus(located, world)
    projection = fitted_projection(list(fitted["lon"]), list(fitted["lat"]))
    # only the outlines the view shows (rounded, so the cached subset is reused while the cities stay put)
    view = tuple(round(v, 1) for v in visible_box(projection))
    countries = alt.InlineData(values=outlines_in("countries-50m.json", "countries", view),
                               format=alt.DataFormat(type="topojson", feature="countries"))
    layers = [alt.Chart(countries).mark_geoshape(fill="#f1efe8", stroke="#8c8c8c", strokeWidth=0.6, clip=True)]
    states = outlines_in("states-10m.json", "states", view)
    if states["objects"]["states"]["geometries"]:
        layers.append(alt.Chart(alt.InlineData(values=states, format=alt.DataFormat(type="topojson",
                                                                                   feature="states")))
                      .mark_geoshape(fill=None, stroke="#b5b5b5", strokeWidth=0.4, clip=True))
    tooltip = ["location", "country", alt.Tooltip("revenue:Q", format=",.0f"), "transactions", "alerts"]
    heat = alt.Chart(located).mark_circle(opacity=0.75, stroke="white", strokeWidth=0.5, clip=True).encode(
        longitude="lon:Q", latitude="lat:Q",
        size=alt.Size("revenue:Q", scale=alt.Scale(range=[30, 1800]), legend=None),
        color=alt.Color("revenue:Q", scale=alt.Scale(scheme="orangered"), title="revenue"), tooltip=tooltip)
    alerted = located[located["alerts"] > 0]
    rings = alt.Chart(alerted).mark_point(shape="circle", filled=False, color="#a50026", strokeWidth=2,
                                          clip=True).encode(
        longitude="lon:Q", latitude="lat:Q", size=alt.Size("alerts:Q", scale=alt.Scale(range=[60, 1200]),
                                                           legend=None), tooltip=tooltip)
    names = alt.Chart(located.head(labels)).mark_text(dy=-12, fontSize=11, clip=True).encode(
        longitude="lon:Q", latitude="lat:Q", text="location")
    return alt.layer(*layers, heat, rings, names).project(**projection).properties(
        width=WIDTH, height=HEIGHT)
