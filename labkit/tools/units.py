"""Units: conversions of length, weight, volume, speed and temperature."""

import random
from functools import partial
from typing import Callable, Literal

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call, lookup

FAMILY = "units"

# How much of the quantity's base unit (meter, kilogram, liter, meter per second) one unit is.
LENGTH = {
    "meter": 1.0,
    "kilometer": 1000.0,
    "centimeter": 0.01,
    "millimeter": 0.001,
    "mile": 1609.344,
    "yard": 0.9144,
    "foot": 0.3048,
    "inch": 0.0254,
}
WEIGHT = {
    "kilogram": 1.0,
    "gram": 0.001,
    "tonne": 1000.0,
    "pound": 0.45359237,
    "ounce": 0.028349523125,
    "stone": 6.35029318,
}
VOLUME = {
    "liter": 1.0,
    "milliliter": 0.001,
    "gallon": 3.785411784,
    "quart": 0.946352946,
    "pint": 0.473176473,
    "cup": 0.2365882365,
    "tablespoon": 0.01478676478125,
}
SPEED = {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704, "knot": 1852 / 3600}
TEMPERATURE = ("celsius", "fahrenheit", "kelvin")
QUANTITIES = {
    "length": tuple(LENGTH),
    "weight": tuple(WEIGHT),
    "volume": tuple(VOLUME),
    "speed": tuple(SPEED),
    "temperature": TEMPERATURE,
}

LengthUnit = Literal["meter", "kilometer", "centimeter", "millimeter", "mile", "yard", "foot", "inch"]
WeightUnit = Literal["kilogram", "gram", "tonne", "pound", "ounce", "stone"]
VolumeUnit = Literal["liter", "milliliter", "gallon", "quart", "pint", "cup", "tablespoon"]
SpeedUnit = Literal["m/s", "km/h", "mph", "knot"]
TemperatureUnit = Literal["celsius", "fahrenheit", "kelvin"]


def _convert(value: float, from_unit: str, to_unit: str, factors: dict[str, float], quantity: str) -> dict:
    from_unit = lookup(from_unit, factors, f"{quantity} unit")
    to_unit = lookup(to_unit, factors, f"{quantity} unit")
    result = value * factors[from_unit] / factors[to_unit]
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": round(result, 2)}


def convert_length(value: float, from_unit: LengthUnit, to_unit: LengthUnit) -> dict:
    """Convert a length from one unit to another.

    Args:
        value: The length to convert
        from_unit: Unit name of the given length, e.g. mile
        to_unit: Unit name to convert to, e.g. kilometer

    Returns:
        The original value and units, and the converted result.
    """
    return _convert(value, from_unit, to_unit, LENGTH, "length")


def convert_weight(value: float, from_unit: WeightUnit, to_unit: WeightUnit) -> dict:
    """Convert a weight (mass) from one unit to another.

    Args:
        value: The weight to convert
        from_unit: Unit name of the given weight, e.g. pound
        to_unit: Unit name to convert to, e.g. kilogram

    Returns:
        The original value and units, and the converted result.
    """
    return _convert(value, from_unit, to_unit, WEIGHT, "weight")


def convert_volume(value: float, from_unit: VolumeUnit, to_unit: VolumeUnit) -> dict:
    """Convert a volume from one unit to another (US gallons, quarts, pints and cups).

    Args:
        value: The volume to convert
        from_unit: Unit name of the given volume, e.g. cup
        to_unit: Unit name to convert to, e.g. milliliter

    Returns:
        The original value and units, and the converted result.
    """
    return _convert(value, from_unit, to_unit, VOLUME, "volume")


def convert_speed(value: float, from_unit: SpeedUnit, to_unit: SpeedUnit) -> dict:
    """Convert a speed from one unit to another.

    Args:
        value: The speed to convert
        from_unit: Unit name of the given speed, e.g. mph
        to_unit: Unit name to convert to, e.g. km/h

    Returns:
        The original value and units, and the converted result.
    """
    return _convert(value, from_unit, to_unit, SPEED, "speed")


def convert_temperature(value: float, from_unit: TemperatureUnit, to_unit: TemperatureUnit) -> dict:
    """Convert a temperature between celsius, fahrenheit and kelvin.

    Args:
        value: The temperature to convert
        from_unit: Unit name of the given temperature, e.g. celsius
        to_unit: Unit name to convert to, e.g. fahrenheit

    Returns:
        The original value and units, and the converted result.
    """
    from_unit = lookup(from_unit, TEMPERATURE, "temperature unit")
    to_unit = lookup(to_unit, TEMPERATURE, "temperature unit")
    # Go through kelvin, the one scale where zero means no heat at all.
    kelvin = {"celsius": value + 273.15, "fahrenheit": (value - 32) * 5 / 9 + 273.15, "kelvin": value}[from_unit]
    if kelvin < 0:
        raise ValueError(f"{value} {from_unit} is below absolute zero")
    result = {"celsius": kelvin - 273.15, "fahrenheit": (kelvin - 273.15) * 9 / 5 + 32, "kelvin": kelvin}[to_unit]
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": round(result, 2)}


def list_units(quantity: Literal["length", "weight", "volume", "speed", "temperature"]) -> list[str]:
    """List the units the converter knows for one kind of quantity.

    Args:
        quantity: Quantity name, e.g. length

    Returns:
        The unit names accepted by that quantity's convert tool.
    """
    return list(QUANTITIES[lookup(quantity, QUANTITIES, "quantity")])


TOOLS = [convert_length, convert_weight, convert_volume, convert_speed, convert_temperature, list_units]

# ----------------------------------------------------------------------------- task templates

# Conversions worth asking about: their results stay well above the 0.01 the tools round to.
PAIRS = {
    convert_length: [
        ("mile", "kilometer"),
        ("kilometer", "mile"),
        ("foot", "meter"),
        ("inch", "centimeter"),
        ("yard", "meter"),
    ],
    convert_weight: [
        ("pound", "kilogram"),
        ("kilogram", "pound"),
        ("ounce", "gram"),
        ("stone", "kilogram"),
        ("tonne", "pound"),
    ],
    convert_volume: [
        ("cup", "milliliter"),
        ("gallon", "liter"),
        ("liter", "pint"),
        ("tablespoon", "milliliter"),
        ("quart", "liter"),
    ],
    convert_speed: [("mph", "km/h"), ("km/h", "mph"), ("knot", "km/h"), ("m/s", "km/h")],
}


def _plural(unit: str) -> str:
    if "/" in unit or unit == "mph":
        return unit
    return {"foot": "feet", "inch": "inches"}.get(unit, unit + "s")


def _conversion(tool: Callable[..., dict], rng: random.Random) -> TaskDraft:
    from_unit, to_unit = rng.choice(PAIRS[tool])
    value = rng.randint(2, 500)
    call, answer = gold_call(tool, "result", value=value, from_unit=from_unit, to_unit=to_unit)
    query = rng.choice(
        [
            f"Convert {value} {_plural(from_unit)} to {_plural(to_unit)}.",
            f"How many {_plural(to_unit)} is {value} {_plural(from_unit)}?",
        ]
    )
    return TaskDraft(query, [call], answer, "number", extra_tools=["list_units"])


def _temperature(rng: random.Random) -> TaskDraft:
    from_unit, to_unit = rng.sample(TEMPERATURE, 2)
    value = rng.randint(-40, 120) + (273 if from_unit == "kelvin" else 0)
    call, answer = gold_call(convert_temperature, "result", value=value, from_unit=from_unit, to_unit=to_unit)
    given = f"{value} kelvin" if from_unit == "kelvin" else f"{value} degrees {from_unit}"
    return TaskDraft(f"What is {given} in {to_unit}?", [call], answer, "number", extra_tools=["list_units"])


def _unit_list(rng: random.Random) -> TaskDraft:
    quantity = rng.choice(sorted(QUANTITIES))
    call, answer = gold_call(list_units, None, quantity=quantity)
    query = rng.choice(
        [
            f"Which {quantity} units does the converter support?",
            f"List every unit of {quantity} you can convert between.",
        ]
    )
    return TaskDraft(query, [call], answer, "set", extra_tools=["convert_length"])


TEMPLATES = [
    TaskTemplate("units.length", (FAMILY,), partial(_conversion, convert_length)),
    TaskTemplate("units.weight", (FAMILY,), partial(_conversion, convert_weight)),
    TaskTemplate("units.volume", (FAMILY,), partial(_conversion, convert_volume)),
    TaskTemplate("units.speed", (FAMILY,), partial(_conversion, convert_speed)),
    TaskTemplate("units.temperature", (FAMILY,), _temperature),
    TaskTemplate("units.unit_list", (FAMILY,), _unit_list),
]
