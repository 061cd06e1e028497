"""Calendar: weekdays, date arithmetic, leap years and fixed-date public holidays."""

import datetime
import random
from typing import Literal

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call, lookup, parse_date

FAMILY = "calendar"

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Public holidays that fall on the same day every year, as {MM-DD: name}.
HOLIDAYS = {
    "Australia": {
        "01-01": "New Year's Day",
        "01-26": "Australia Day",
        "04-25": "Anzac Day",
        "12-25": "Christmas Day",
        "12-26": "Boxing Day",
    },
    "Brazil": {
        "01-01": "New Year's Day",
        "04-21": "Tiradentes Day",
        "05-01": "Labour Day",
        "09-07": "Independence Day",
        "10-12": "Our Lady of Aparecida",
        "11-02": "All Souls' Day",
        "11-15": "Republic Proclamation Day",
        "12-25": "Christmas Day",
    },
    "Canada": {
        "01-01": "New Year's Day",
        "07-01": "Canada Day",
        "11-11": "Remembrance Day",
        "12-25": "Christmas Day",
        "12-26": "Boxing Day",
    },
    "France": {
        "01-01": "New Year's Day",
        "05-01": "Labour Day",
        "05-08": "Victory in Europe Day",
        "07-14": "Bastille Day",
        "08-15": "Assumption Day",
        "11-01": "All Saints' Day",
        "11-11": "Armistice Day",
        "12-25": "Christmas Day",
    },
    "Germany": {
        "01-01": "New Year's Day",
        "05-01": "Labour Day",
        "10-03": "German Unity Day",
        "12-25": "Christmas Day",
        "12-26": "Second Day of Christmas",
    },
    "India": {"01-26": "Republic Day", "08-15": "Independence Day", "10-02": "Gandhi Jayanti"},
    "Italy": {
        "01-01": "New Year's Day",
        "01-06": "Epiphany",
        "04-25": "Liberation Day",
        "05-01": "Labour Day",
        "06-02": "Republic Day",
        "08-15": "Ferragosto",
        "11-01": "All Saints' Day",
        "12-08": "Immaculate Conception",
        "12-25": "Christmas Day",
        "12-26": "Saint Stephen's Day",
    },
    "Japan": {
        "01-01": "New Year's Day",
        "02-11": "National Foundation Day",
        "02-23": "Emperor's Birthday",
        "04-29": "Showa Day",
        "05-03": "Constitution Memorial Day",
        "05-04": "Greenery Day",
        "05-05": "Children's Day",
        "08-11": "Mountain Day",
        "11-03": "Culture Day",
        "11-23": "Labour Thanksgiving Day",
    },
    "Mexico": {"01-01": "New Year's Day", "05-01": "Labour Day", "09-16": "Independence Day", "12-25": "Christmas Day"},
    "Spain": {
        "01-01": "New Year's Day",
        "01-06": "Epiphany",
        "05-01": "Labour Day",
        "08-15": "Assumption Day",
        "10-12": "National Day",
        "11-01": "All Saints' Day",
        "12-06": "Constitution Day",
        "12-08": "Immaculate Conception",
        "12-25": "Christmas Day",
    },
    "United Kingdom": {"01-01": "New Year's Day", "12-25": "Christmas Day", "12-26": "Boxing Day"},
    "United States": {
        "01-01": "New Year's Day",
        "06-19": "Juneteenth",
        "07-04": "Independence Day",
        "11-11": "Veterans Day",
        "12-25": "Christmas Day",
    },
}


def day_of_week(date: str) -> dict:
    """Get the day of the week a date falls on.

    Args:
        date: The date, in YYYY-MM-DD format

    Returns:
        The date and its weekday, e.g. Monday.
    """
    day = parse_date(date)
    return {"date": day.isoformat(), "weekday": WEEKDAYS[day.weekday()]}


def add_days(date: str, days: int) -> dict:
    """Add a number of days to a date (a negative number goes back in time).

    Args:
        date: The starting date, in YYYY-MM-DD format
        days: How many days to add; negative to subtract

    Returns:
        The starting date, the days added and the resulting date.
    """
    start = parse_date(date)
    try:
        result = start + datetime.timedelta(days=days)
    except OverflowError:
        raise ValueError(f"{days} days from {start.isoformat()} is outside the years 1 to 9999") from None
    return {"date": start.isoformat(), "days": days, "result": result.isoformat()}


def days_between(start_date: str, end_date: str) -> dict:
    """Count the days from one date to another.

    Args:
        start_date: The first date, in YYYY-MM-DD format
        end_date: The second date, in YYYY-MM-DD format

    Returns:
        Both dates and the number of days between them (negative when end_date comes first).
    """
    start, end = parse_date(start_date), parse_date(end_date)
    return {"start_date": start.isoformat(), "end_date": end.isoformat(), "days": (end - start).days}


def next_weekday(
    date: str, weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
) -> dict:
    """Find the first given weekday strictly after a date.

    Args:
        date: The date to start from, in YYYY-MM-DD format
        weekday: Weekday name to find, e.g. friday

    Returns:
        The starting date, the weekday and the date of its next occurrence.
    """
    start = parse_date(date)
    wanted = WEEKDAYS.index(lookup(weekday, WEEKDAYS, "weekday"))
    result = start + datetime.timedelta(days=(wanted - start.weekday() - 1) % 7 + 1)
    return {"date": start.isoformat(), "weekday": WEEKDAYS[wanted], "result": result.isoformat()}


def is_leap_year(year: int) -> bool:
    """Tell whether a year of the Gregorian calendar is a leap year.

    Args:
        year: The year, e.g. 2024

    Returns:
        True when the year has 366 days.
    """
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def get_holidays(country: str, year: int) -> list[dict]:
    """List a country's fixed-date public holidays in a year, in date order.

    Args:
        country: Country name, e.g. France
        year: The year, from 1900 to 2100

    Returns:
        One entry per holiday with its date (YYYY-MM-DD) and English name.
    """
    country = lookup(country, HOLIDAYS, "country")
    if not 1900 <= year <= 2100:
        raise ValueError(f"year must be between 1900 and 2100, got {year}")
    return [{"date": f"{year}-{month_day}", "name": name} for month_day, name in HOLIDAYS[country].items()]


TOOLS = [day_of_week, add_days, days_between, next_weekday, is_leap_year, get_holidays]

# ----------------------------------------------------------------------------- task templates


def _random_date(rng: random.Random) -> str:
    return datetime.date(rng.randint(1990, 2035), rng.randint(1, 12), rng.randint(1, 28)).isoformat()


def _weekday(rng: random.Random) -> TaskDraft:
    day = _random_date(rng)
    call, answer = gold_call(day_of_week, "weekday", date=day)
    query = rng.choice([f"What day of the week is {day}?", f"On which weekday does {day} fall?"])
    return TaskDraft(query, [call], answer, "exact", extra_tools=["add_days"])


def _date_after(rng: random.Random) -> TaskDraft:
    day, days = _random_date(rng), rng.choice([-1, 1]) * rng.randint(2, 400)
    call, answer = gold_call(add_days, "result", date=day, days=days)
    query = f"What date is {days} days after {day}?" if days > 0 else f"What date is {-days} days before {day}?"
    return TaskDraft(query + " Answer as YYYY-MM-DD.", [call], answer, "exact", extra_tools=["days_between"])


def _days_apart(rng: random.Random) -> TaskDraft:
    start, end = sorted([_random_date(rng), _random_date(rng)])
    call, answer = gold_call(days_between, "days", start_date=start, end_date=end)
    query = f"How many days are there from {start} to {end}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["add_days"])


def _next_weekday(rng: random.Random) -> TaskDraft:
    day, weekday = _random_date(rng), rng.choice(WEEKDAYS)
    call, answer = gold_call(next_weekday, "result", date=day, weekday=weekday.casefold())
    query = f"What is the date of the first {weekday} after {day}?"
    return TaskDraft(query, [call], answer, "exact", extra_tools=["day_of_week"])


def _weekday_after(rng: random.Random) -> TaskDraft:
    day, days = _random_date(rng), rng.randint(10, 500)
    first, later = gold_call(add_days, "result", date=day, days=days)
    second, answer = gold_call(day_of_week, "weekday", date=later)
    query = f"What weekday will it be {days} days after {day}?"
    return TaskDraft(query, [first, second], answer, "exact", extra_tools=["next_weekday"])


def _holiday_weekday(rng: random.Random) -> TaskDraft:
    country, year = rng.choice(sorted(HOLIDAYS)), rng.randint(2000, 2035)
    index = rng.randrange(len(HOLIDAYS[country]))
    holiday = list(HOLIDAYS[country].values())[index]
    first, holiday_date = gold_call(get_holidays, f"{index}.date", country=country, year=year)
    second, answer = gold_call(day_of_week, "weekday", date=holiday_date)
    query = f"On which weekday is {holiday} in {country} in {year}?"
    return TaskDraft(query, [first, second], answer, "exact", extra_tools=["is_leap_year"])


TEMPLATES = [
    TaskTemplate("calendar.weekday", (FAMILY,), _weekday),
    TaskTemplate("calendar.date_after", (FAMILY,), _date_after),
    TaskTemplate("calendar.days_apart", (FAMILY,), _days_apart),
    TaskTemplate("calendar.next_weekday", (FAMILY,), _next_weekday),
    TaskTemplate("calendar.weekday_after", (FAMILY,), _weekday_after),
    TaskTemplate("calendar.holiday_weekday", (FAMILY,), _holiday_weekday),
]
