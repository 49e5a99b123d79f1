"""The geographic heatmap: country and U.S. state outlines under revenue and alerts per city.

The outlines are TopoJSON vendored from npm (world-atlas, us-atlas: bin/vendor-map-outlines) in
include/data/maps/, checked against their sha256 in manifest.json when first read, and inlined into
the chart, so the map needs no tile server and no network when the page is viewed. Cities get their
coordinates from include/data/cities.csv; the view is fitted to the cities with data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

MAPS_DIR = Path(__file__).resolve().parents[1] / "include" / "data" / "maps"
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
    countries = alt.InlineData(values=outlines("countries-50m.json"),
                               format=alt.DataFormat(type="topojson", feature="countries"))
    states = alt.InlineData(values=outlines("states-10m.json"),
                            format=alt.DataFormat(type="topojson", feature="states"))
    land = alt.Chart(countries).mark_geoshape(fill="#f1efe8", stroke="#8c8c8c", strokeWidth=0.6, clip=True)
    borders = alt.Chart(states).mark_geoshape(fill=None, stroke="#b5b5b5", strokeWidth=0.4, clip=True)
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
    return alt.layer(land, borders, heat, rings, names).project(**projection).properties(
        width=WIDTH, height=HEIGHT)
