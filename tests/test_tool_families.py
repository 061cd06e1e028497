"""The built-in tool families and their task templates: schemas, gold paths, determinism and errors."""

import json
import random
import re

import pytest

from labkit.tools import calendar, chains, currency, geography, library, stats, store, text, units, weather
from labkit.tools.base import TaskDraft, read_path
from labkit.tools.registry import BUILTIN_FAMILIES, SEEN_FAMILIES, UNSEEN_FAMILIES

FAMILY_MODULES = [weather, units, currency, calendar, geography, text, stats, store, library]
TEMPLATES = [t for module in [*FAMILY_MODULES, chains] for t in module.TEMPLATES]
SEEDS = range(50)
# Parameters the evolution operators treat as identifiers (and so may require in upper case).
IDENTIFIERS = {
    "city",
    "from_city",
    "to_city",
    "country",
    "base",
    "target",
    "code",
    "product_id",
    "order_id",
    "book_id",
    "loan_id",
    "author",
    "title",
    "coupon",
}
IDENTIFIER_WORDS = re.compile(r"\b(name|code|ID)\b")


def test_catalog_has_every_family_fully_documented(catalog):
    assert len(catalog) >= 40
    assert sorted(catalog.families) == sorted(BUILTIN_FAMILIES)
    for family in BUILTIN_FAMILIES:
        assert len(catalog.family(family)) >= 5, family
    for tool in catalog.tools.values():
        assert tool.description, tool.name
        for name, spec in tool.parameters["properties"].items():
            assert spec.get("description"), f"{tool.name}.{name} has no description"


def test_parameter_descriptions_say_what_evolution_needs_to_know(catalog):
    for tool in catalog.tools.values():
        for name, spec in tool.parameters["properties"].items():
            where, description = f"{tool.name}.{name}", spec["description"]
            if "date" in name:
                assert "YYYY-MM-DD" in description, where
            elif name in IDENTIFIERS:
                assert IDENTIFIER_WORDS.search(description), where
            elif spec["type"] == "string" and "enum" not in spec:
                assert not IDENTIFIER_WORDS.search(description), f"{where} is free text but reads like an identifier"


@pytest.mark.parametrize("module", FAMILY_MODULES, ids=lambda m: m.FAMILY)
def test_each_family_has_its_own_templates(module):
    assert len(module.TEMPLATES) >= 3
    assert all(t.families == (module.FAMILY,) for t in module.TEMPLATES)


def _hops(template) -> int:
    """How many gold calls the template's tasks take (the same for every seed)."""
    counts = {len(template.make(random.Random(seed)).calls) for seed in range(5)}
    assert len(counts) == 1, template.name
    return counts.pop()


def test_templates_stay_on_one_side_of_the_split():
    for template in TEMPLATES:
        families = set(template.families)
        assert families <= set(SEEN_FAMILIES) or families <= set(UNSEEN_FAMILIES), template.name
    seen = [t for t in chains.TEMPLATES if set(t.families) <= set(SEEN_FAMILIES)]
    unseen = [t for t in chains.TEMPLATES if set(t.families) <= set(UNSEEN_FAMILIES)]
    assert len(seen) >= 4 and len(unseen) >= 2
    assert max(_hops(t) for t in seen) == 3 and max(_hops(t) for t in unseen) == 3
    assert all(len(t.families) >= 2 and 2 <= _hops(t) <= 3 for t in chains.TEMPLATES)


def test_template_names_are_unique():
    names = [t.name for t in TEMPLATES]
    assert len(names) == len(set(names))


def _assert_answer_fits_check(draft: TaskDraft) -> None:
    if draft.check == "number":
        assert isinstance(draft.answer, (int, float)) and not isinstance(draft.answer, bool)
    elif draft.check == "set":
        assert draft.answer and all(isinstance(item, str) for item in draft.answer)
        # Answer checking splits a reply on commas, semicolons and "and".
        assert not any(re.search(r"[,;]|\band\b", item) for item in draft.answer), draft.answer
    else:
        assert isinstance(draft.answer, str) and draft.answer


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_template_gold_path_replays_to_the_answer(template, catalog):
    for seed in SEEDS:
        draft = template.make(random.Random(seed))
        assert isinstance(draft, TaskDraft) and draft.calls
        assert 0 < len(draft.query.split()) <= 30, draft.query
        families_used = {catalog[call.name].family for call in draft.calls}
        assert families_used == set(template.families), (template.name, seed)
        reads = [read_path(catalog[call.name].func(**call.arguments), call.read) for call in draft.calls]
        assert reads[-1] == draft.answer, (template.name, seed)
        # Each earlier hop's value is what a later hop is called with.
        for hop, value in enumerate(reads[:-1]):
            later = [arg for call in draft.calls[hop + 1 :] for arg in call.arguments.values()]
            assert value in later, (template.name, seed, hop)
        json.dumps({"answer": draft.answer, "calls": [c.arguments for c in draft.calls]})
        _assert_answer_fits_check(draft)
        called = {call.name for call in draft.calls}
        assert len(draft.extra_tools) == 1
        for extra in draft.extra_tools:
            assert extra not in called and catalog[extra].family in template.families
        assert template.make(random.Random(seed)) == draft


def test_chained_families_share_their_data():
    for country, facts in geography.COUNTRIES.items():
        assert facts.capital in weather.CITIES, country
        assert facts.currency in currency.CURRENCIES, country
    assert set(calendar.HOLIDAYS) <= set(geography.COUNTRIES)


@pytest.mark.parametrize(
    "quantity, tool",
    [
        ("length", units.convert_length),
        ("weight", units.convert_weight),
        ("volume", units.convert_volume),
        ("speed", units.convert_speed),
        ("temperature", units.convert_temperature),
    ],
)
def test_documented_units_are_the_listed_ones(catalog, quantity, tool):
    assert catalog[tool.__name__].parameters["properties"]["from_unit"]["enum"] == units.list_units(quantity)


def test_lookups_ignore_case_and_surrounding_spaces():
    assert weather.get_current_weather("  PARIS ", "CELSIUS") == weather.get_current_weather("Paris")
    assert currency.convert_currency(10, "eur", " Usd") == currency.convert_currency(10, "EUR", "USD")
    assert geography.list_countries("NORTH AMERICA") == geography.list_countries("north america")
    assert calendar.next_weekday("2024-05-17", "FRIDAY")["result"] == "2024-05-24"
    assert units.convert_length(1, "KILOMETER", "Meter")["result"] == 1000
    assert store.get_product("p-1001")["product_id"] == "P-1001"
    assert library.find_book("the hobbit")["book_id"] == "B-203"
    assert text.change_case("Hello World", "SNAKE") == "hello_world"


def test_gold_calls_still_work_with_upper_case_identifiers(catalog):
    # change_value_format may demand upper-case identifiers; the tools must not care.
    for template in TEMPLATES:
        for call in template.make(random.Random(0)).calls:
            tool = catalog[call.name]
            properties = tool.parameters["properties"]
            shouted = {
                name: value.upper() if name in IDENTIFIERS or "enum" in properties[name] else value
                for name, value in call.arguments.items()
            }
            assert tool.func(**shouted) == tool.func(**call.arguments), (template.name, call)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: weather.get_current_weather("Pariss"), "unknown city 'Pariss'"),
        (lambda: weather.get_forecast("Oslo", days=9), "days must be between 1 and 5"),
        (lambda: units.convert_length(1, "parsec", "meter"), "unknown length unit 'parsec'"),
        (lambda: units.convert_temperature(-500, "celsius", "kelvin"), "below absolute zero"),
        (lambda: currency.convert_currency(5, "XYZ", "EUR"), "unknown currency code 'XYZ'"),
        (lambda: currency.get_historical_rate("EUR", "USD", "1999-01-01"), "no rates on record"),
        (lambda: calendar.day_of_week("2024-13-01"), "invalid date '2024-13-01': expected YYYY-MM-DD"),
        (lambda: geography.get_capital("Atlantis"), "unknown country 'Atlantis'"),
        (lambda: text.extract_keywords("some words", top_k=0), "top_k must be at least 1"),
        (lambda: stats.mean_of([]), "values must hold at least 1"),
        (lambda: stats.correlation_of([1, 2], [3]), "equally long"),
        (lambda: store.get_order("O-0000"), "unknown order ID 'O-0000'"),
        (lambda: store.get_order_total("O-5001", coupon="FREE"), "unknown coupon code 'FREE'"),
        (lambda: library.calculate_late_fee("L-301", "05/04/2024"), "expected YYYY-MM-DD"),
    ],
)
def test_bad_input_fails_like_an_api(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
