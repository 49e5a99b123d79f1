"""The gazetteer behind txnmon.core.geo: GeoNames cities over 15,000 people, names, countries, bounds."""

from __future__ import annotations

import gzip
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core import gazetteer, geo
from txnmon.synthetic.spec import FAR_CITIES, HOME_CITIES

# The hand-kept table geo read before the gazetteer (src/txnmon/data/cities.csv at main): every one
# of its names must still resolve to a city of the same country within 30 km.
OLD_CITIES = [
    ("Mumbai", "IN", 19.076, 72.8777),
    ("Delhi", "IN", 28.7041, 77.1025),
    ("New Delhi", "IN", 28.6139, 77.209),
    ("Bangalore", "IN", 12.9716, 77.5946),
    ("Bengaluru", "IN", 12.9716, 77.5946),
    ("Chennai", "IN", 13.0827, 80.2707),
    ("Kolkata", "IN", 22.5726, 88.3639),
    ("Hyderabad", "IN", 17.385, 78.4867),
    ("Pune", "IN", 18.5204, 73.8567),
    ("Ahmedabad", "IN", 23.0225, 72.5714),
    ("Jaipur", "IN", 26.9124, 75.7873),
    ("Lucknow", "IN", 26.8467, 80.9462),
    ("Surat", "IN", 21.1702, 72.8311),
    ("Kanpur", "IN", 26.4499, 80.3319),
    ("Nagpur", "IN", 21.1458, 79.0882),
    ("Indore", "IN", 22.7196, 75.8577),
    ("Bhopal", "IN", 23.2599, 77.4126),
    ("Patna", "IN", 25.5941, 85.1376),
    ("Chandigarh", "IN", 30.7333, 76.7794),
    ("Kochi", "IN", 9.9312, 76.2673),
    ("Goa", "IN", 15.2993, 74.124),
    ("Guwahati", "IN", 26.1445, 91.7362),
    ("Coimbatore", "IN", 11.0168, 76.9558),
    ("Visakhapatnam", "IN", 17.6868, 83.2185),
    ("Thiruvananthapuram", "IN", 8.5241, 76.9366),
    ("London", "GB", 51.5072, -0.1276),
    ("Manchester", "GB", 53.4808, -2.2426),
    ("Paris", "FR", 48.8566, 2.3522),
    ("Berlin", "DE", 52.52, 13.405),
    ("Munich", "DE", 48.1351, 11.582),
    ("Madrid", "ES", 40.4168, -3.7038),
    ("Barcelona", "ES", 41.3874, 2.1686),
    ("Rome", "IT", 41.9028, 12.4964),
    ("Milan", "IT", 45.4642, 9.19),
    ("Amsterdam", "NL", 52.3676, 4.9041),
    ("Zürich", "CH", 47.3769, 8.5417),
    ("Vienna", "AT", 48.2082, 16.3738),
    ("Stockholm", "SE", 59.3293, 18.0686),
    ("Warsaw", "PL", 52.2297, 21.0122),
    ("Istanbul", "TR", 41.0082, 28.9784),
    ("Moscow", "RU", 55.7558, 37.6173),
    ("Dubai", "AE", 25.2048, 55.2708),
    ("Abu Dhabi", "AE", 24.4539, 54.3773),
    ("Riyadh", "SA", 24.7136, 46.6753),
    ("Doha", "QA", 25.2854, 51.531),
    ("Cairo", "EG", 30.0444, 31.2357),
    ("Lagos", "NG", 6.5244, 3.3792),
    ("Nairobi", "KE", -1.2921, 36.8219),
    ("Johannesburg", "ZA", -26.2041, 28.0473),
    ("Cape Town", "ZA", -33.9249, 18.4241),
    ("New York", "US", 40.7128, -74.006),
    ("Los Angeles", "US", 34.0522, -118.2437),
    ("Chicago", "US", 41.8781, -87.6298),
    ("San Francisco", "US", 37.7749, -122.4194),
    ("Seattle", "US", 47.6062, -122.3321),
    ("Miami", "US", 25.7617, -80.1918),
    ("Boston", "US", 42.3601, -71.0589),
    ("Austin", "US", 30.2672, -97.7431),
    ("Toronto", "CA", 43.6532, -79.3832),
    ("Vancouver", "CA", 49.2827, -123.1207),
    ("Mexico City", "MX", 19.4326, -99.1332),
    ("São Paulo", "BR", -23.5505, -46.6333),
    ("Rio de Janeiro", "BR", -22.9068, -43.1729),
    ("Buenos Aires", "AR", -34.6037, -58.3816),
    ("Bogotá", "CO", 4.711, -74.0721),
    ("Lima", "PE", -12.0464, -77.0428),
    ("Singapore", "SG", 1.3521, 103.8198),
    ("Hong Kong", "HK", 22.3193, 114.1694),
    ("Shanghai", "CN", 31.2304, 121.4737),
    ("Beijing", "CN", 39.9042, 116.4074),
    ("Shenzhen", "CN", 22.5431, 114.0579),
    ("Tokyo", "JP", 35.6762, 139.6503),
    ("Osaka", "JP", 34.6937, 135.5023),
    ("Seoul", "KR", 37.5665, 126.978),
    ("Bangkok", "TH", 13.7563, 100.5018),
    ("Kuala Lumpur", "MY", 3.139, 101.6869),
    ("Jakarta", "ID", -6.2088, 106.8456),
    ("Manila", "PH", 14.5995, 120.9842),
    ("Ho Chi Minh City", "VN", 10.8231, 106.6297),
    ("Dhaka", "BD", 23.8103, 90.4125),
    ("Karachi", "PK", 24.8607, 67.0011),
    ("Colombo", "LK", 6.9271, 79.8612),
    ("Kathmandu", "NP", 27.7172, 85.324),
    ("Sydney", "AU", -33.8688, 151.2093),
    ("Melbourne", "AU", -37.8136, 144.9631),
    ("Auckland", "NZ", -36.8485, 174.7633),
]


@pytest.mark.parametrize(("name", "country", "lat", "lon"), OLD_CITIES, ids=[c[0] for c in OLD_CITIES])
def test_every_name_of_the_old_table_resolves_near_its_old_place(name, country, lat, lon):
    city = geo.lookup(name)
    assert city is not None and city.country == country
    assert geo.distance_km(city, geo.City(name, country, lat, lon)) <= 30


@pytest.mark.parametrize("name", [*HOME_CITIES, *FAR_CITIES])
def test_the_synthetic_cities_resolve(name):
    assert geo.lookup(str(name)) is not None


@pytest.mark.parametrize(("name", "expected"), [
    ("Bombay", "Mumbai"), ("Bangalore", "Bengaluru"), ("Bengaluru", "Bengaluru"), ("New York", "New York City"),
    ("Gurgaon", "Gurugram"), ("Gurugram", "Gurugram"), ("Madras", "Chennai"), ("Calcutta", "Kolkata"),
    ("Baroda", "Vadodara"), ("Poona", "Pune"), ("Cochin", "Kochi"), ("Trivandrum", "Thiruvananthapuram"),
])
def test_aliases_resolve_to_the_city_they_name(name, expected):
    assert geo.lookup(name).name == expected


@pytest.mark.parametrize("name", ["São Paulo", "Sao Paulo", "SÃO PAULO", "  são   paulo ", "sao paulo"])
def test_accents_case_and_spaces_do_not_matter(name):
    city = geo.lookup(name)
    assert (city.name, city.country) == ("São Paulo", "BR")


@pytest.mark.parametrize(("name", "country"), [
    ("London", "GB"), ("Paris", "FR"), ("Hyderabad", "IN"), ("Kochi", "IN"),
    ("London, CA", "CA"), ("London, Canada", "CA"), ("London, GBR", "GB"), ("Paris, United States", "US"),
    ("Paris, US", "US"), ("Springfield, USA", "US"), ("Hyderabad, Pakistan", "PK"), ("Goa", "IN"),
])
def test_the_larger_city_wins_unless_a_country_suffix_restricts(name, country):
    assert geo.lookup(name).country == country


def test_a_primary_name_beats_another_citys_alias():
    # Mormugao (IN) lists 'Goa' among its alternate names and Genoa 'Genova'; neither steals a primary name
    assert geo.lookup("Genova").name == "Genoa"
    assert geo.lookup("Mormugao").name == "Mormugao"


@pytest.mark.parametrize("name", ["Atlantis-on-Sea", "", "Mumbai, Atlantis", "Smallville, US", "London, Ontario"])
def test_unknown_places_are_none_not_a_guess(name):
    assert geo.lookup(name) is None


@pytest.mark.parametrize(("location", "country"), [
    ("Mumbai", "IN"), ("Bombay", "IN"), ("London, CA", "CA"), ("Smallville, US", "US"),
    ("Nowhere Town, United Kingdom", "GB"), ("United Kingdom", "GB"), ("UK", "GB"), ("GB", "GB"), ("GBR", "GB"),
    ("India", "IN"), ("usa", "US"), ("UAE", "AE"), ("Lebanon", "LB"), ("Atlantis-on-Sea", None),
])
def test_country_of_a_city_a_suffix_or_a_bare_country(location, country):
    assert geo.country_of(location) == country


def test_min_country_distance_separates_far_countries_and_not_neighbours():
    assert geo.min_country_distance_km("IN", "GB") > 3_000
    assert geo.min_country_distance_km("GB", "IN") == geo.min_country_distance_km("IN", "GB")
    assert geo.min_country_distance_km("IN", "PK") < 200
    assert geo.min_country_distance_km("IN", "IN") == 0
    assert geo.min_country_distance_km("IN", "XX") == 0


def _table_cities() -> list[geo.City]:
    with gzip.open(gazetteer.CITIES_TSV, "rt", encoding="utf-8") as fh:
        rows = [line.split("\t") for line in fh]
    return [geo.City(r[0], r[1], float(r[2]), float(r[3])) for r in rows]


TABLE = _table_cities()
BY_COUNTRY: dict[str, list[geo.City]] = {}
for _city in TABLE:
    BY_COUNTRY.setdefault(_city.country, []).append(_city)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TABLE), st.sampled_from(TABLE))
def test_min_country_distance_never_exceeds_a_real_distance(a, b):
    assert geo.min_country_distance_km(a.country, b.country) <= geo.distance_km(a, b)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(BY_COUNTRY)), st.data())
def test_the_bound_holds_for_each_countrys_extreme_cities(country, data):
    # the sampled pairs above rarely hit a country's outermost towns: check them against far countries
    mine = BY_COUNTRY[country]
    other = data.draw(st.sampled_from(TABLE))
    bound = geo.min_country_distance_km(country, other.country)
    assert all(bound <= geo.distance_km(c, other) for c in mine)


def test_the_table_is_complete_and_a_repeated_lookup_is_a_cache_hit():
    assert len(TABLE) == 34_006
    geo.lookup("Pune")
    start = time.perf_counter()
    for _ in range(10_000):
        geo.lookup("Pune")
    assert (time.perf_counter() - start) / 10_000 < 20e-6  # the processor calls it per transaction
