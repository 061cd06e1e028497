"""Currency: exchange rates, conversions and facts about the world's main currencies.

Rates are a fixed table (roughly early 2024), so an answer never changes over time.
"""

import datetime
import random
from typing import NamedTuple

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call, lookup, parse_date

FAMILY = "currency"


class Currency(NamedTuple):
    name: str
    symbol: str
    per_usd: float  # units of this currency one US dollar buys
    decimals: int  # digits after the decimal point in everyday prices


CURRENCIES = {
    "ARS": Currency("Argentine peso", "$", 870.0, 2),
    "AUD": Currency("Australian dollar", "A$", 1.52, 2),
    "BRL": Currency("Brazilian real", "R$", 5.05, 2),
    "CAD": Currency("Canadian dollar", "C$", 1.36, 2),
    "CHF": Currency("Swiss franc", "CHF", 0.88, 2),
    "CNY": Currency("Chinese yuan", "¥", 7.23, 2),
    "DKK": Currency("Danish krone", "kr", 6.87, 2),
    "EGP": Currency("Egyptian pound", "E£", 47.3, 2),
    "EUR": Currency("Euro", "€", 0.92, 2),
    "GBP": Currency("Pound sterling", "£", 0.79, 2),
    "INR": Currency("Indian rupee", "₹", 83.4, 2),
    "JPY": Currency("Japanese yen", "¥", 151.2, 0),
    "KES": Currency("Kenyan shilling", "KSh", 131.5, 2),
    "KRW": Currency("South Korean won", "₩", 1345.0, 0),
    "MXN": Currency("Mexican peso", "$", 16.9, 2),
    "NGN": Currency("Nigerian naira", "₦", 1300.0, 2),
    "NOK": Currency("Norwegian krone", "kr", 10.8, 2),
    "NZD": Currency("New Zealand dollar", "NZ$", 1.66, 2),
    "PEN": Currency("Peruvian sol", "S/", 3.72, 2),
    "PLN": Currency("Polish zloty", "zł", 3.98, 2),
    "SEK": Currency("Swedish krona", "kr", 10.6, 2),
    "THB": Currency("Thai baht", "฿", 36.5, 2),
    "USD": Currency("United States dollar", "$", 1.0, 2),
    "ZAR": Currency("South African rand", "R", 18.7, 2),
}
HISTORY_START, HISTORY_END = datetime.date(2010, 1, 1), datetime.date(2024, 12, 31)


def _code(code: str) -> str:
    return lookup(code, CURRENCIES, "currency code")


def _rate(base: str, target: str) -> float:
    return CURRENCIES[target].per_usd / CURRENCIES[base].per_usd


def _past_per_usd(code: str, day: datetime.date) -> float:
    """A made-up but repeatable wobble of up to 3% around the current rate, different for each currency."""
    if code == "USD":
        return 1.0
    wobble = ((day.toordinal() + 7 * sorted(CURRENCIES).index(code)) * 37 % 61 - 30) / 1000
    return CURRENCIES[code].per_usd * (1 + wobble)


def get_exchange_rate(base: str, target: str) -> dict:
    """Get the current exchange rate between two currencies.

    Args:
        base: ISO 4217 code of the currency to convert from, e.g. EUR
        target: ISO 4217 code of the currency to convert to, e.g. JPY

    Returns:
        The two currency codes and the rate: how many units of target one unit of base buys.
    """
    base, target = _code(base), _code(target)
    # Rates keep six decimals: one won or yen is worth well under a cent.
    return {"base": base, "target": target, "rate": round(_rate(base, target), 6)}


def convert_currency(amount: float, base: str, target: str) -> dict:
    """Convert an amount of money from one currency to another at the current rate.

    Args:
        amount: The amount of money in the base currency
        base: ISO 4217 code of the currency to convert from, e.g. USD
        target: ISO 4217 code of the currency to convert to, e.g. GBP

    Returns:
        The original amount and codes, and the converted amount in the target currency.
    """
    base, target = _code(base), _code(target)
    return {"amount": amount, "base": base, "target": target, "converted": round(amount * _rate(base, target), 2)}


def get_historical_rate(base: str, target: str, date: str) -> dict:
    """Get the exchange rate between two currencies on a past day (2010 to 2024).

    Args:
        base: ISO 4217 code of the currency to convert from, e.g. GBP
        target: ISO 4217 code of the currency to convert to, e.g. USD
        date: The day of the rate, in YYYY-MM-DD format

    Returns:
        The two currency codes, the date and the rate that day.
    """
    base, target, day = _code(base), _code(target), parse_date(date)
    if not HISTORY_START <= day <= HISTORY_END:
        raise ValueError(f"no rates on record for {day.isoformat()}: history covers 2010-01-01 to 2024-12-31")
    rate = _past_per_usd(target, day) / _past_per_usd(base, day)
    return {"base": base, "target": target, "date": day.isoformat(), "rate": round(rate, 6)}


def get_currency_info(code: str) -> dict:
    """Get the full name, symbol and usual decimal places of a currency.

    Args:
        code: ISO 4217 currency code, e.g. CHF

    Returns:
        The code, the currency's English name, its symbol and how many decimals prices use.
    """
    code = _code(code)
    currency = CURRENCIES[code]
    return {"code": code, "name": currency.name, "symbol": currency.symbol, "decimals": currency.decimals}


def find_strongest_currency(codes: list[str]) -> dict:
    """Find which of several currencies is worth the most US dollars per unit.

    Args:
        codes: ISO 4217 currency codes to compare, e.g. ["GBP", "EUR"]

    Returns:
        The strongest currency's code and what one unit of it is worth in US dollars.
    """
    if not codes:
        raise ValueError("codes must name at least one currency")
    strongest = min((_code(code) for code in codes), key=lambda code: CURRENCIES[code].per_usd)
    return {"code": strongest, "usd_value": round(1 / CURRENCIES[strongest].per_usd, 6)}


TOOLS = [get_exchange_rate, convert_currency, get_historical_rate, get_currency_info, find_strongest_currency]

# ----------------------------------------------------------------------------- task templates


def _exchange_rate(rng: random.Random) -> TaskDraft:
    base, target = rng.sample(sorted(CURRENCIES), 2)
    call, answer = gold_call(get_exchange_rate, "rate", base=base, target=target)
    query = rng.choice(
        [
            f"What is the exchange rate from {base} to {target}?",
            f"How many {target} does one {base} buy today?",
        ]
    )
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_historical_rate"])


def _conversion(rng: random.Random) -> TaskDraft:
    base, target = rng.sample(sorted(CURRENCIES), 2)
    amount = rng.choice([20, 50, 75, 100, 250, 1000, 5000])
    call, answer = gold_call(convert_currency, "converted", amount=amount, base=base, target=target)
    query = rng.choice([f"Convert {amount} {base} to {target}.", f"How much is {amount} {base} in {target}?"])
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_exchange_rate"])


def _historical_rate(rng: random.Random) -> TaskDraft:
    base, target = rng.sample(sorted(CURRENCIES), 2)
    day = datetime.date(rng.randint(2010, 2024), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
    call, answer = gold_call(get_historical_rate, "rate", base=base, target=target, date=day)
    query = f"What was the {base} to {target} exchange rate on {day}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_exchange_rate"])


def _currency_name(rng: random.Random) -> TaskDraft:
    code = rng.choice(sorted(CURRENCIES))
    call, answer = gold_call(get_currency_info, "name", code=code)
    query = rng.choice(
        [
            f"What is the currency with code {code} called?",
            f"What is the full name of the currency {code}?",
        ]
    )
    return TaskDraft(query, [call], answer, "exact", extra_tools=["get_exchange_rate"])


def _strongest_conversion(rng: random.Random) -> TaskDraft:
    codes = rng.sample(sorted(CURRENCIES), 3)
    target = rng.choice(sorted(set(CURRENCIES) - set(codes)))
    amount = rng.choice([10, 50, 100, 500])
    first, strongest = gold_call(find_strongest_currency, "code", codes=codes)
    second, answer = gold_call(convert_currency, "converted", amount=amount, base=strongest, target=target)
    query = f"Which of {', '.join(codes)} is worth the most in US dollars? Convert {amount} of it to {target}."
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["get_currency_info"])


TEMPLATES = [
    TaskTemplate("currency.exchange_rate", (FAMILY,), _exchange_rate),
    TaskTemplate("currency.conversion", (FAMILY,), _conversion),
    TaskTemplate("currency.historical_rate", (FAMILY,), _historical_rate),
    TaskTemplate("currency.currency_name", (FAMILY,), _currency_name),
    TaskTemplate("currency.strongest_conversion", (FAMILY,), _strongest_conversion),
]
