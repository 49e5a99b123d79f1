"""The map's outlines cut to the view: what is kept is drawn exactly as before, the rest is not sent."""

from __future__ import annotations

import json

from txnmon.dashboard import geomap

INDIA = ([72.88, 77.10, 77.59, 88.36, 80.27, 78.49], [19.08, 28.70, 12.97, 22.57, 13.08, 17.39])  # lon, lat


def _rings(topology: dict, geometry: dict) -> list[list[tuple[int, int]]]:
    """A geometry's rings as absolute quantised points, arcs stitched as TopoJSON says."""
    decoded = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x, y))
        decoded.append(points)
    polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
    return [[p for i in ring for p in (decoded[i] if i >= 0 else decoded[~i][::-1])]
            for polygon in polygons for ring in polygon]


def test_a_view_of_india_keeps_its_neighbours_exactly_and_drops_the_rest():
    world = geomap.outlines("countries-50m.json")
    view = geomap.visible_box(geomap.fitted_projection(*INDIA))
    cut = geomap.subset(world, "countries", view)
    names = {g["properties"]["name"] for g in cut["objects"]["countries"]["geometries"]}
    assert {"India", "Nepal", "Sri Lanka", "Bangladesh", "Pakistan"} <= names
    assert not names & {"Brazil", "United States of America", "Australia", "Zimbabwe"}
    assert len(json.dumps(cut)) < len(json.dumps(world)) / 4
    key = lambda g: (g.get("id"), g["properties"]["name"])  # noqa: E731 (a few outlines have no id)
    original = {key(g): g for g in world["objects"]["countries"]["geometries"]}
    for geometry in cut["objects"]["countries"]["geometries"]:
        rings = _rings(cut, geometry)
        before = _rings(world, original[key(geometry)])
        if geometry["type"] == "Polygon":
            assert rings == before, geometry["properties"]["name"]
        else:  # a multipolygon keeps the parts in view, each exactly
            assert rings and all(r in before for r in rings), geometry["properties"]["name"]
    assert geomap.subset(geomap.outlines("states-10m.json"), "states", view)["objects"]["states"]["geometries"] == []


def test_the_world_view_keeps_everything():
    world = geomap.outlines("countries-50m.json")
    cut = geomap.subset(world, "countries", (-200.0, -90.0, 200.0, 90.0))
    assert len(cut["objects"]["countries"]["geometries"]) == sum(
        1 for g in world["objects"]["countries"]["geometries"] if g.get("arcs"))
    assert len(cut["arcs"]) <= len(world["arcs"])
