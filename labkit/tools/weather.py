"""Weather: current conditions, a five-day forecast, wind, air quality and UV for a fixed set of cities.

The readings are a made-up snapshot, so an answer never changes over time.
"""

import random
from typing import Literal, NamedTuple

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call, lookup

FAMILY = "weather"


class Reading(NamedTuple):
    temperature: float  # degrees Celsius
    condition: str
    humidity: int  # percent
    wind: float  # km/h
    wind_direction: str
    aqi: int  # US air quality index
    uv_index: int


CITIES = {
    "Abuja": Reading(31.0, "partly cloudy", 58, 11.0, "SW", 88, 9),
    "Bangkok": Reading(33.5, "thunderstorms", 74, 9.5, "S", 97, 10),
    "Beijing": Reading(16.0, "hazy", 41, 13.0, "NW", 152, 5),
    "Berlin": Reading(14.5, "overcast", 68, 18.0, "W", 35, 3),
    "Bern": Reading(12.0, "light rain", 81, 8.0, "SW", 22, 2),
    "Brasilia": Reading(27.0, "sunny", 45, 12.5, "E", 40, 11),
    "Buenos Aires": Reading(19.5, "clear", 62, 16.0, "SE", 48, 6),
    "Cairo": Reading(29.0, "sunny", 28, 15.0, "N", 165, 9),
    "Canberra": Reading(9.5, "clear", 55, 10.0, "NW", 15, 3),
    "Cape Town": Reading(17.5, "windy", 66, 38.0, "SE", 27, 6),
    "Lima": Reading(18.0, "overcast", 83, 14.0, "S", 72, 7),
    "Lisbon": Reading(21.0, "sunny", 60, 20.0, "NW", 30, 7),
    "London": Reading(13.0, "drizzle", 84, 19.0, "SW", 38, 2),
    "Madrid": Reading(24.5, "sunny", 33, 11.0, "W", 52, 8),
    "Mexico City": Reading(22.0, "partly cloudy", 47, 9.0, "NE", 121, 10),
    "Nairobi": Reading(23.0, "partly cloudy", 57, 17.0, "E", 61, 11),
    "New Delhi": Reading(35.0, "hazy", 38, 7.5, "NW", 187, 9),
    "New York": Reading(18.0, "clear", 58, 17.0, "W", 57, 6),
    "Oslo": Reading(7.5, "snow showers", 76, 21.0, "N", 18, 1),
    "Ottawa": Reading(10.0, "cloudy", 65, 23.0, "NW", 25, 3),
    "Paris": Reading(18.5, "cloudy", 72, 14.0, "SW", 42, 4),
    "Pretoria": Reading(24.0, "sunny", 36, 13.0, "NE", 58, 8),
    "Rome": Reading(23.0, "sunny", 55, 10.5, "S", 47, 7),
    "Seoul": Reading(17.0, "clear", 52, 12.0, "W", 83, 5),
    "Stockholm": Reading(9.0, "cloudy", 70, 20.0, "SW", 20, 2),
    "Sydney": Reading(22.5, "sunny", 61, 18.5, "NE", 29, 8),
    "Tokyo": Reading(20.5, "light rain", 78, 15.0, "E", 56, 4),
    "Warsaw": Reading(11.5, "overcast", 74, 16.5, "W", 44, 3),
    "Washington": Reading(19.0, "partly cloudy", 60, 14.5, "S", 51, 6),
    "Wellington": Reading(12.5, "windy", 69, 42.0, "N", 12, 3),
}
TEMPERATURE_UNITS = ("celsius", "fahrenheit")
SPEED_UNITS = ("km/h", "mph")
# The forecast cycles these from a different starting day in each city.
FORECAST_SWINGS = (1.5, -2.0, 0.5, 3.0, -1.0, 2.0, -0.5)  # change of the daily high from the current temperature
FORECAST_SKIES = ("sunny", "partly cloudy", "cloudy", "light rain", "clear", "overcast", "showers")
AQI_CATEGORIES = ((50, "good"), (100, "moderate"), (150, "unhealthy for sensitive groups"), (200, "unhealthy"))
UV_RISKS = ((2, "low"), (5, "moderate"), (7, "high"), (10, "very high"))


def _band(value: float, bands: tuple, above: str) -> str:
    return next((label for limit, label in bands if value <= limit), above)


def _temperature(celsius: float, unit: str) -> float:
    return round(celsius * 9 / 5 + 32 if unit == "fahrenheit" else celsius, 2)


def get_current_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Get the current weather in a city.

    Args:
        city: City name, e.g. Paris
        unit: Temperature unit name, celsius or fahrenheit

    Returns:
        The city, the temperature in the requested unit, the sky condition and the relative humidity in percent.
    """
    city = lookup(city, CITIES, "city")
    unit = lookup(unit, TEMPERATURE_UNITS, "temperature unit")
    reading = CITIES[city]
    return {
        "city": city,
        "temperature": _temperature(reading.temperature, unit),
        "unit": unit,
        "condition": reading.condition,
        "humidity": reading.humidity,
    }


def get_forecast(city: str, days: int = 3, unit: Literal["celsius", "fahrenheit"] = "celsius") -> list[dict]:
    """Get the daily forecast for a city, starting tomorrow.

    Args:
        city: City name, e.g. Tokyo
        days: How many days to forecast, from 1 to 5
        unit: Temperature unit name, celsius or fahrenheit

    Returns:
        One entry per day (day 1 is tomorrow) with the high, the low and the sky condition.
    """
    city = lookup(city, CITIES, "city")
    unit = lookup(unit, TEMPERATURE_UNITS, "temperature unit")
    if not 1 <= days <= 5:
        raise ValueError(f"days must be between 1 and 5, got {days}")
    start = sorted(CITIES).index(city)
    forecast = []
    for day in range(1, days + 1):
        step = (start + day) % len(FORECAST_SWINGS)
        high = CITIES[city].temperature + FORECAST_SWINGS[step]
        forecast.append(
            {
                "day": day,
                "high": _temperature(high, unit),
                "low": _temperature(high - 8.0, unit),
                "condition": FORECAST_SKIES[step],
            }
        )
    return forecast


def get_wind(city: str, unit: Literal["km/h", "mph"] = "km/h") -> dict:
    """Get the current wind speed and direction in a city.

    Args:
        city: City name, e.g. Wellington
        unit: Speed unit name, km/h or mph

    Returns:
        The city, the wind speed in the requested unit and the compass direction it blows from.
    """
    city = lookup(city, CITIES, "city")
    unit = lookup(unit, SPEED_UNITS, "speed unit")
    speed = CITIES[city].wind / (1.609344 if unit == "mph" else 1.0)
    return {"city": city, "speed": round(speed, 2), "unit": unit, "direction": CITIES[city].wind_direction}


def get_air_quality(city: str) -> dict:
    """Get the current air quality index (US AQI) of a city.

    Args:
        city: City name, e.g. Beijing

    Returns:
        The city, its air quality index and the health category of that index.
    """
    city = lookup(city, CITIES, "city")
    aqi = CITIES[city].aqi
    return {"city": city, "aqi": aqi, "category": _band(aqi, AQI_CATEGORIES, "very unhealthy")}


def get_uv_index(city: str) -> dict:
    """Get the current UV index of a city and the sunburn risk it means.

    Args:
        city: City name, e.g. Sydney

    Returns:
        The city, its UV index and the risk level (low, moderate, high, very high or extreme).
    """
    city = lookup(city, CITIES, "city")
    uv_index = CITIES[city].uv_index
    return {"city": city, "uv_index": uv_index, "risk": _band(uv_index, UV_RISKS, "extreme")}


def find_warmest_city(cities: list[str]) -> dict:
    """Find which of several cities is warmest right now.

    Args:
        cities: City names to compare, e.g. ["Oslo", "Rome"]

    Returns:
        The warmest city and its temperature in celsius.
    """
    if not cities:
        raise ValueError("cities must name at least one city")
    known = [lookup(city, CITIES, "city") for city in cities]
    warmest = max(known, key=lambda city: CITIES[city].temperature)
    return {"city": warmest, "temperature": CITIES[warmest].temperature, "unit": "celsius"}


TOOLS = [get_current_weather, get_forecast, get_wind, get_air_quality, get_uv_index, find_warmest_city]

# ----------------------------------------------------------------------------- task templates


def _current_temperature(rng: random.Random) -> TaskDraft:
    city, unit = rng.choice(sorted(CITIES)), rng.choice(TEMPERATURE_UNITS)
    call, answer = gold_call(get_current_weather, "temperature", city=city, unit=unit)
    query = rng.choice(
        [
            f"What is the temperature in {city} right now, in {unit}?",
            f"How warm is it in {city} at the moment? Give it in {unit}.",
        ]
    )
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_forecast"])


def _sky_condition(rng: random.Random) -> TaskDraft:
    city = rng.choice(sorted(CITIES))
    call, answer = gold_call(get_current_weather, "condition", city=city)
    query = rng.choice(
        [
            f"What is the sky like in {city} right now?",
            f"Describe the current weather condition in {city}.",
        ]
    )
    return TaskDraft(query, [call], answer, "contains", extra_tools=["get_uv_index"])


def _forecast_high(rng: random.Random) -> TaskDraft:
    city, days, unit = rng.choice(sorted(CITIES)), rng.randint(1, 5), rng.choice(TEMPERATURE_UNITS)
    call, answer = gold_call(get_forecast, f"{days - 1}.high", city=city, days=days, unit=unit)
    when = "tomorrow" if days == 1 else f"{days} days from now"
    query = f"What high temperature is forecast for {city} {when}, in {unit}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_current_weather"])


def _wind_speed(rng: random.Random) -> TaskDraft:
    city = rng.choice(sorted(CITIES))
    call, answer = gold_call(get_wind, "speed", city=city, unit="mph")
    query = f"How fast is the wind blowing in {city}, in miles per hour?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_current_weather"])


def _warmest_city_air_quality(rng: random.Random) -> TaskDraft:
    cities = rng.sample(sorted(CITIES), 3)
    first, warmest = gold_call(find_warmest_city, "city", cities=cities)
    second, answer = gold_call(get_air_quality, "aqi", city=warmest)
    query = f"Find the warmest of {cities[0]}, {cities[1]} and {cities[2]} right now. What is its air quality index?"
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["get_uv_index"])


TEMPLATES = [
    TaskTemplate("weather.current_temperature", (FAMILY,), _current_temperature),
    TaskTemplate("weather.sky_condition", (FAMILY,), _sky_condition),
    TaskTemplate("weather.forecast_high", (FAMILY,), _forecast_high),
    TaskTemplate("weather.wind_speed", (FAMILY,), _wind_speed),
    TaskTemplate("weather.warmest_city_air_quality", (FAMILY,), _warmest_city_air_quality),
]
