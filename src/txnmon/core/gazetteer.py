"""The bundled gazetteer (src/txnmon/data/gazetteer/, GeoNames cities over 15,000 people) as name indexes.

Read once, on first use, by txnmon.core.geo; bin/build-gazetteer writes the files.
"""

from __future__ import annotations

import functools
import gzip
import unicodedata
from dataclasses import dataclass
from pathlib import Path

# bundled package data: the only files this module touches
GAZETTEER_DIR = Path(__file__).resolve().parents[1] / "data" / "gazetteer"
CITIES_TSV = GAZETTEER_DIR / "cities.tsv.gz"
COUNTRIES_TSV = GAZETTEER_DIR / "countries.tsv"
# a curated alias, written "=Name" in the table, outranks primary names (see bin/build-gazetteer)
PREFERRED, PRIMARY, ALIAS = 0, 1, 2


@dataclass(frozen=True, slots=True)  # 34,006 of them stay in memory
class City:
    name: str
    country: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Country:
    iso2: str
    name: str
    iso3: str
    continent: str


@dataclass(frozen=True)
class Gazetteer:
    by_name: dict[str, City]  # normal form -> the best city of that name anywhere
    by_name_country: dict[tuple[str, str], City]  # (normal form, ISO2) -> the best there, when not by_name's
    countries: dict[str, Country]  # ISO2 -> Country
    country_names: dict[str, str]  # normal form of a name, alias, ISO2 or ISO3 -> ISO2
    cities_of: dict[str, list[tuple[City, int]]]  # ISO2 -> its cities with their population


def normalise(name: str) -> str:
    """Case-folded, accents removed, whitespace collapsed: 'SÃO  PAULO' and 'Sao Paulo' meet."""
    if name.isascii():  # most names, and loading normalises ~150,000 of them: skip NFKD
        return " ".join(name.lower().split())
    plain = "".join(c for c in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(c))
    return " ".join(plain.split())


@functools.cache
def load() -> Gazetteer:
    best: dict[str, tuple[int, int, City]] = {}
    best_in: dict[tuple[str, str], tuple[int, int, City]] = {}
    cities_of: dict[str, list[tuple[City, int]]] = {}

    def offer(name: str, rank: int, population: int, city: City) -> None:
        # a better rank wins, then the larger population; the table's sorted order breaks the rest
        k, entry = normalise(name), (rank, -population, city)
        if (held := best.get(k)) is None or entry[:2] < held[:2]:
            best[k] = entry
        if (held := best_in.get((k, city.country))) is None or entry[:2] < held[:2]:
            best_in[k, city.country] = entry

    with gzip.open(CITIES_TSV, "rt", encoding="utf-8") as fh:
        for line in fh:
            name, country, lat, lon, population, aliases = line.rstrip("\n").split("\t")
            city, pop = City(name, country, float(lat), float(lon)), int(population)
            cities_of.setdefault(country, []).append((city, pop))
            offer(name, PRIMARY, pop, city)
            for alias in filter(None, aliases.split("|")):
                preferred = alias.startswith("=")
                offer(alias.removeprefix("="), PREFERRED if preferred else ALIAS, pop, city)
    countries: dict[str, Country] = {}
    country_names: dict[str, str] = {}
    for line in COUNTRIES_TSV.read_text(encoding="utf-8").splitlines():
        iso2, name, iso3, continent, aliases = line.split("\t")
        countries[iso2] = Country(iso2, name, iso3, continent)
        for label in (iso2, iso3, name, *filter(None, aliases.split("|"))):
            country_names.setdefault(normalise(label), iso2)
    by_name = {k: v[2] for k, v in best.items()}
    # where the best city of a name anywhere is in that country it is also the best there: keep only
    # the others (about a sixth), which halves what the table holds in memory
    by_name_country = {k: v[2] for k, v in best_in.items() if by_name[k[0]] is not v[2]}
    return Gazetteer(by_name, by_name_country, countries, country_names, cities_of)
