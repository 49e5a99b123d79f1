"""City coordinates from the bundled table (src/txnmon/data/cities.csv): no network, no map tiles."""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

# bundled package data, read once: the only file this module touches
CITIES_CSV = Path(__file__).resolve().parents[1] / "data" / "cities.csv"
EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lon: float


@functools.cache
def cities() -> dict[str, City]:
    """City name (case-folded) to City."""
    with CITIES_CSV.open(encoding="utf-8", newline="") as fh:
        return {
            row["city"].casefold(): City(row["city"], row["country"], float(row["lat"]), float(row["lon"]))
            for row in csv.DictReader(fh)
        }


def lookup(name: str) -> City | None:
    return cities().get(name.strip().casefold())


def distance_km(a: City, b: City) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def country_of(location: str) -> str | None:
    """Temporary: the country of a city in the table (the gazetteer replaces this)."""
    city = lookup(location)
    return city.country if city is not None else None


def min_country_distance_km(a: str, b: str) -> float:
    """Temporary: no bound (the gazetteer replaces this)."""
    return 0.0
