"""Geography: capitals, populations, currencies, languages and distances of 27 countries."""

import math
import random
from typing import Literal, NamedTuple

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call, lookup

FAMILY = "geography"


class Country(NamedTuple):
    capital: str
    continent: str
    population_millions: float  # rounded, about 2023
    currency: str  # ISO 4217 code
    languages: tuple[str, ...]  # official or main languages
    latitude: float  # of the capital
    longitude: float


COUNTRIES = {
    "Argentina": Country("Buenos Aires", "south america", 46.7, "ARS", ("Spanish",), -34.6037, -58.3816),
    "Australia": Country("Canberra", "oceania", 26.6, "AUD", ("English",), -35.2809, 149.13),
    "Brazil": Country("Brasilia", "south america", 216.4, "BRL", ("Portuguese",), -15.7939, -47.8828),
    "Canada": Country("Ottawa", "north america", 40.1, "CAD", ("English", "French"), 45.4215, -75.6972),
    "China": Country("Beijing", "asia", 1410.7, "CNY", ("Mandarin",), 39.9042, 116.4074),
    "Egypt": Country("Cairo", "africa", 112.7, "EGP", ("Arabic",), 30.0444, 31.2357),
    "France": Country("Paris", "europe", 68.2, "EUR", ("French",), 48.8566, 2.3522),
    "Germany": Country("Berlin", "europe", 84.5, "EUR", ("German",), 52.52, 13.405),
    "India": Country("New Delhi", "asia", 1428.6, "INR", ("Hindi", "English"), 28.6139, 77.209),
    "Italy": Country("Rome", "europe", 58.9, "EUR", ("Italian",), 41.9028, 12.4964),
    "Japan": Country("Tokyo", "asia", 124.5, "JPY", ("Japanese",), 35.6762, 139.6503),
    "Kenya": Country("Nairobi", "africa", 55.1, "KES", ("Swahili", "English"), -1.2921, 36.8219),
    "Mexico": Country("Mexico City", "north america", 128.5, "MXN", ("Spanish",), 19.4326, -99.1332),
    "New Zealand": Country("Wellington", "oceania", 5.2, "NZD", ("English", "Maori"), -41.2865, 174.7762),
    "Nigeria": Country("Abuja", "africa", 223.8, "NGN", ("English",), 9.0765, 7.3986),
    "Norway": Country("Oslo", "europe", 5.5, "NOK", ("Norwegian", "Sami"), 59.9139, 10.7522),
    "Peru": Country("Lima", "south america", 34.4, "PEN", ("Spanish", "Quechua", "Aymara"), -12.0464, -77.0428),
    "Poland": Country("Warsaw", "europe", 36.7, "PLN", ("Polish",), 52.2297, 21.0122),
    "Portugal": Country("Lisbon", "europe", 10.5, "EUR", ("Portuguese",), 38.7223, -9.1393),
    "South Africa": Country(
        "Pretoria", "africa", 60.4, "ZAR", ("Zulu", "Xhosa", "Afrikaans", "English"), -25.7479, 28.2293
    ),
    "South Korea": Country("Seoul", "asia", 51.7, "KRW", ("Korean",), 37.5665, 126.978),
    "Spain": Country("Madrid", "europe", 48.6, "EUR", ("Spanish", "Catalan", "Basque", "Galician"), 40.4168, -3.7038),
    "Sweden": Country("Stockholm", "europe", 10.6, "SEK", ("Swedish",), 59.3293, 18.0686),
    "Switzerland": Country("Bern", "europe", 8.9, "CHF", ("German", "French", "Italian", "Romansh"), 46.948, 7.4474),
    "Thailand": Country("Bangkok", "asia", 71.8, "THB", ("Thai",), 13.7563, 100.5018),
    "United Kingdom": Country("London", "europe", 68.3, "GBP", ("English",), 51.5074, -0.1278),
    "United States": Country("Washington", "north america", 334.9, "USD", ("English",), 38.9072, -77.0369),
}
CAPITALS = {country.capital: country for country in COUNTRIES.values()}
CONTINENTS = ("africa", "asia", "europe", "north america", "oceania", "south america")
EARTH_RADIUS_KM = 6371.0


def _country(country: str) -> tuple[str, Country]:
    name = lookup(country, COUNTRIES, "country")
    return name, COUNTRIES[name]


def get_capital(country: str) -> dict:
    """Get the capital city of a country.

    Args:
        country: Country name, e.g. Japan

    Returns:
        The country and its capital city.
    """
    name, facts = _country(country)
    return {"country": name, "capital": facts.capital}


def get_population(country: str) -> dict:
    """Get the population of a country, in millions of people.

    Args:
        country: Country name, e.g. Brazil

    Returns:
        The country and its population in millions, rounded to one decimal.
    """
    name, facts = _country(country)
    return {"country": name, "population_millions": facts.population_millions}


def get_country_currency(country: str) -> dict:
    """Get the currency a country pays with.

    Args:
        country: Country name, e.g. Kenya

    Returns:
        The country and the ISO 4217 code of its currency.
    """
    name, facts = _country(country)
    return {"country": name, "currency_code": facts.currency}


def get_languages(country: str) -> list[str]:
    """List the official or main languages of a country.

    Args:
        country: Country name, e.g. Switzerland

    Returns:
        The language names.
    """
    return list(_country(country)[1].languages)


def list_countries(
    continent: Literal["africa", "asia", "europe", "north america", "oceania", "south america"],
) -> list[str]:
    """List the countries this atlas knows on one continent.

    Args:
        continent: Continent name, e.g. europe

    Returns:
        The country names, in alphabetical order.
    """
    continent = lookup(continent, CONTINENTS, "continent")
    return [name for name, facts in COUNTRIES.items() if facts.continent == continent]


def get_distance(from_city: str, to_city: str, unit: Literal["km", "mi"] = "km") -> dict:
    """Get the great-circle distance between two capital cities.

    Args:
        from_city: First capital city name, e.g. Paris
        to_city: Second capital city name, e.g. Rome
        unit: Distance unit code, km or mi

    Returns:
        Both cities and the distance between them in the requested unit.
    """
    from_city = lookup(from_city, CAPITALS, "capital city")
    to_city = lookup(to_city, CAPITALS, "capital city")
    unit = lookup(unit, ("km", "mi"), "distance unit")
    a, b = CAPITALS[from_city], CAPITALS[to_city]
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    # Haversine formula: exact on a sphere, within 0.5% on the real Earth.
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    distance = 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h)) / (1.609344 if unit == "mi" else 1.0)
    return {"from_city": from_city, "to_city": to_city, "distance": round(distance, 2), "unit": unit}


TOOLS = [get_capital, get_population, get_country_currency, get_languages, list_countries, get_distance]

# ----------------------------------------------------------------------------- task templates


def _capital(rng: random.Random) -> TaskDraft:
    country = rng.choice(sorted(COUNTRIES))
    call, answer = gold_call(get_capital, "capital", country=country)
    query = rng.choice([f"What is the capital of {country}?", f"Which city is the capital of {country}?"])
    return TaskDraft(query, [call], answer, "exact", extra_tools=["get_population"])


def _population(rng: random.Random) -> TaskDraft:
    country = rng.choice(sorted(COUNTRIES))
    call, answer = gold_call(get_population, "population_millions", country=country)
    query = f"How many people live in {country}, in millions?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_capital"])


def _languages(rng: random.Random) -> TaskDraft:
    country = rng.choice(sorted(COUNTRIES))
    call, answer = gold_call(get_languages, None, country=country)
    query = f"Which languages are official or mainly spoken in {country}?"
    return TaskDraft(query, [call], answer, "set", extra_tools=["get_capital"])


def _continent_countries(rng: random.Random) -> TaskDraft:
    continent = rng.choice(CONTINENTS)
    call, answer = gold_call(list_countries, None, continent=continent)
    query = f"Which countries in {continent.title()} does the atlas cover?"
    return TaskDraft(query, [call], answer, "set", extra_tools=["get_population"])


def _capital_distance(rng: random.Random) -> TaskDraft:
    country_a, country_b = rng.sample(sorted(COUNTRIES), 2)
    unit = rng.choice(["km", "mi"])
    first, capital_a = gold_call(get_capital, "capital", country=country_a)
    second, capital_b = gold_call(get_capital, "capital", country=country_b)
    third, answer = gold_call(get_distance, "distance", from_city=capital_a, to_city=capital_b, unit=unit)
    units = "kilometers" if unit == "km" else "miles"
    query = f"How far apart are the capitals of {country_a} and {country_b}, in {units}?"
    return TaskDraft(query, [first, second, third], answer, "number", extra_tools=["list_countries"])


TEMPLATES = [
    TaskTemplate("geography.capital", (FAMILY,), _capital),
    TaskTemplate("geography.population", (FAMILY,), _population),
    TaskTemplate("geography.languages", (FAMILY,), _languages),
    TaskTemplate("geography.continent_countries", (FAMILY,), _continent_countries),
    TaskTemplate("geography.capital_distance", (FAMILY,), _capital_distance),
]
