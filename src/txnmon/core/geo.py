"""Where a location is: cities and countries from the bundled GeoNames gazetteer (txnmon.core.gazetteer).

No network, no map tiles. A name resolves after normalising (case, accents, spaces): a curated or
primary name beats an alias, then the larger city wins ('London' is London GB, 'Paris' Paris FR);
a ', Country' suffix (name, ISO2 or ISO3: 'London, CA', 'Springfield, USA') restricts to that country.
"""

from __future__ import annotations

import functools
import math

from txnmon.core.gazetteer import City, load, normalise

__all__ = ["City", "country_of", "distance_km", "lookup", "min_country_distance_km"]

EARTH_RADIUS_KM = 6371.0
# the table holds towns over 15,000 people: a smaller one may lie this far beyond a country's outermost
BEYOND_TABLE_KM = 100.0


def _split(key: str) -> tuple[str, str | None]:
    """'london, ca' -> ('london', 'CA'); the place alone when there is no country suffix."""
    place, comma, suffix = key.rpartition(",")
    iso2 = load().country_names.get(suffix.strip()) if comma else None
    return (place.strip(), iso2) if iso2 is not None else (key, None)


# The processor resolves every transaction's location: after the first time a name is one dict hit.
@functools.lru_cache(maxsize=65_536)
def lookup(name: str) -> City | None:
    """The city a location names ('Bombay', 'SÃO PAULO', 'Paris, United States'), or None."""
    g, key = load(), normalise(name)
    if (city := g.by_name.get(key)) is not None:
        return city
    place, iso2 = _split(key)
    # a suffix that is not a country ('London, Ontario') is not guessed at: None, not the wrong London
    if iso2 is None:
        return None
    city = g.by_name.get(place)
    return city if city is not None and city.country == iso2 else g.by_name_country.get((place, iso2))


@functools.lru_cache(maxsize=65_536)
@functools.lru_cache(maxsize=65_536)
def country_of(location: str) -> str | None:
    """The ISO2 country of a location: its suffix's ('Smallville, US'), a bare country's ('United
    Kingdom', 'GB', 'GBR'), else its city's; None when none of these is known."""
    g, key = load(), normalise(location)
    if (iso2 := _split(key)[1]) is not None:
        return iso2
    # a country name before a city: 'Lebanon' is the country, not Lebanon, Pennsylvania
    if (iso2 := g.country_names.get(key)) is not None:
        return iso2
    city = lookup(location)
    return city.country if city is not None else None


def distance_km(a: City, b: City) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _mean_point(iso2: str, cities: list[tuple[City, int]]) -> City | None:
    """The population-weighted mean of the cities on the sphere, or None when it is ill-defined."""
    x = y = z = total = 0.0
    for city, population in cities:
        weight = max(population, 1)  # a few towns (Palau's) have population 0 in GeoNames
        total += weight
        lat, lon = math.radians(city.lat), math.radians(city.lon)
        x += weight * math.cos(lat) * math.cos(lon)
        y += weight * math.cos(lat) * math.sin(lon)
        z += weight * math.sin(lat)
    norm = math.sqrt(x * x + y * y + z * z)
    if norm < 1e-9 * total:  # cities spread all round the globe cancel out
        return None
    return City(f"centre of {iso2}", iso2, math.degrees(math.asin(z / norm)), math.degrees(math.atan2(y, x)))


@functools.cache
def _extent(iso2: str) -> tuple[City, float] | None:
    """A centre of the country and the farthest any of its cities lies from it, in km.

    Two candidate centres, the largest city and the weighted mean; the one with the smaller radius
    gives the tighter bound. Any centre gives a valid one."""
    cities = load().cities_of.get(iso2)
    if not cities:
        return None
    centres = [max(cities, key=lambda cp: cp[1])[0]]
    if (mean := _mean_point(iso2, cities)) is not None:
        centres.append(mean)
    return min(((c, max(distance_km(c, city) for city, _ in cities)) for c in centres), key=lambda cr: cr[1])


def min_country_distance_km(a: str, b: str) -> float:
    """A lower bound of the distance between any place in country a and any in country b (ISO2).

    Every place of a country lies within its radius (plus BEYOND_TABLE_KM) of its centre, so by the
    triangle inequality two places are at least d(centres) - both radii apart. 0 for the same
    country or one the table does not know (no bound is a valid bound)."""
    a, b = a.strip().upper(), b.strip().upper()
    if a == b or (ea := _extent(a)) is None or (eb := _extent(b)) is None:
        return 0.0
    (ca, ra), (cb, rb) = ea, eb
    return max(0.0, distance_km(ca, cb) - ra - rb - 2 * BEYOND_TABLE_KM)
