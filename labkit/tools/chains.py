"""Multi-hop tasks across tool families, where one tool's answer is the next tool's argument.

A chain stays on one side of the seen/unseen split so the unseen families remain
unseen in training.
"""

import datetime
import random

from labkit.tools import calendar, currency, geography, library, stats, store, text, units, weather
from labkit.tools.base import TaskDraft, TaskTemplate, gold_call


def _country(rng: random.Random) -> str:
    return rng.choice(sorted(geography.COUNTRIES))


# ----------------------------------------------------------------------------- seen families


def _capital_weather(rng: random.Random) -> TaskDraft:
    country, unit = _country(rng), rng.choice(weather.TEMPERATURE_UNITS)
    first, capital = gold_call(geography.get_capital, "capital", country=country)
    second, answer = gold_call(weather.get_current_weather, "temperature", city=capital, unit=unit)
    query = rng.choice(
        [
            f"What is the temperature in the capital of {country} right now, in {unit}?",
            f"How warm is it in {country}'s capital at the moment, in {unit}?",
        ]
    )
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["get_population"])


def _capital_kelvin(rng: random.Random) -> TaskDraft:
    country = _country(rng)
    first, capital = gold_call(geography.get_capital, "capital", country=country)
    second, celsius = gold_call(weather.get_current_weather, "temperature", city=capital, unit="celsius")
    third, answer = gold_call(units.convert_temperature, "result", value=celsius, from_unit="celsius", to_unit="kelvin")
    query = f"What is the current temperature in the capital of {country}, in kelvin?"
    return TaskDraft(query, [first, second, third], answer, "number", extra_tools=["get_forecast"])


def _local_currency_amount(rng: random.Random) -> TaskDraft:
    base, amount = rng.choice(["EUR", "GBP", "USD"]), rng.choice([20, 50, 100, 250, 1000])
    country = rng.choice(sorted(name for name, facts in geography.COUNTRIES.items() if facts.currency != base))
    first, code = gold_call(geography.get_country_currency, "currency_code", country=country)
    second, answer = gold_call(currency.convert_currency, "converted", amount=amount, base=base, target=code)
    query = f"I am taking {amount} {base} to {country}. How much is that in the local currency?"
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["get_exchange_rate"])


def _capital_letters(rng: random.Random) -> TaskDraft:
    country = _country(rng)
    first, capital = gold_call(geography.get_capital, "capital", country=country)
    second, answer = gold_call(text.count_characters, None, text=capital, include_spaces=False)
    query = f"How many letters are in the name of the capital of {country}, not counting spaces?"
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["count_words"])


def _rate_days_later(rng: random.Random) -> TaskDraft:
    base, target = rng.sample(sorted(currency.CURRENCIES), 2)
    start = datetime.date(rng.randint(2011, 2023), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
    days = rng.randint(10, 300)
    first, day = gold_call(calendar.add_days, "result", date=start, days=days)
    second, answer = gold_call(currency.get_historical_rate, "rate", base=base, target=target, date=day)
    query = f"What was the {base} to {target} exchange rate {days} days after {start}?"
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["days_between"])


# ----------------------------------------------------------------------------- unseen families


def _average_price(rng: random.Random) -> TaskDraft:
    product_id, months = rng.choice(sorted(store.PRODUCTS)), rng.randint(3, 12)
    first, prices = gold_call(store.get_price_history, "prices", product_id=product_id, months=months)
    second, answer = gold_call(stats.mean_of, None, values=prices)
    query = f"What has product {product_id} cost on average over the last {months} months?"
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["median_of"])


def _price_volatility(rng: random.Random) -> TaskDraft:
    product_id, months = rng.choice(sorted(store.PRODUCTS)), rng.randint(3, 12)
    first, prices = gold_call(store.get_price_history, "prices", product_id=product_id, months=months)
    second, answer = gold_call(stats.std_dev_of, None, values=prices, sample=False)
    query = f"What is the population standard deviation of {product_id}'s monthly prices over the last {months} months?"
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["get_product"])


def _borrowed_book_price(rng: random.Random) -> TaskDraft:
    on_sale = {product.name for product in store.PRODUCTS.values()}
    loan_id = rng.choice(sorted(i for i, loan in library.LOANS.items() if library.BOOKS[loan.book_id].title in on_sale))
    first, book_id = gold_call(library.get_loan, "book_id", loan_id=loan_id)
    second, title = gold_call(library.get_book, "title", book_id=book_id)
    third, answer = gold_call(store.search_products, "0.price", keyword=title)
    query = f"What would it cost to buy the book on library loan {loan_id} from the store, in dollars?"
    return TaskDraft(query, [first, second, third], answer, "number", extra_tools=["check_availability"])


TEMPLATES = [
    TaskTemplate("chain.capital_weather", ("geography", "weather"), _capital_weather),
    TaskTemplate("chain.capital_kelvin", ("geography", "weather", "units"), _capital_kelvin),
    TaskTemplate("chain.local_currency_amount", ("geography", "currency"), _local_currency_amount),
    TaskTemplate("chain.capital_letters", ("geography", "text"), _capital_letters),
    TaskTemplate("chain.rate_days_later", ("calendar", "currency"), _rate_days_later),
    TaskTemplate("chain.average_price", ("store", "stats"), _average_price),
    TaskTemplate("chain.price_volatility", ("store", "stats"), _price_volatility),
    TaskTemplate("chain.borrowed_book_price", ("library", "store"), _borrowed_book_price),
]
