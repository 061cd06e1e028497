"""Stats: descriptive statistics of short lists of numbers."""

import math
import random
import statistics

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call

FAMILY = "stats"


def _require(values: list[float], at_least: int = 1, name: str = "values") -> None:
    if len(values) < at_least:
        raise ValueError(f"{name} must hold at least {at_least} number{'s' if at_least > 1 else ''}, got {len(values)}")


def mean_of(values: list[float]) -> float:
    """Compute the arithmetic mean (average) of a list of numbers.

    Args:
        values: The numbers to average

    Returns:
        The mean.
    """
    _require(values)
    return round(statistics.fmean(values), 2)


def median_of(values: list[float]) -> float:
    """Compute the median (middle value) of a list of numbers.

    Args:
        values: The numbers to take the median of

    Returns:
        The median; the mean of the two middle values when the count is even.
    """
    _require(values)
    return round(float(statistics.median(values)), 2)


def std_dev_of(values: list[float], sample: bool = False) -> float:
    """Compute the standard deviation of a list of numbers.

    Args:
        values: The numbers to measure the spread of
        sample: True for the sample standard deviation (divides by n - 1), False for the population one (divides by n)

    Returns:
        The standard deviation.
    """
    _require(values, 2 if sample else 1)
    return round(statistics.stdev(values) if sample else statistics.pstdev(values), 2)


def percentile_of(values: list[float], percentile: float) -> float:
    """Compute a percentile of a list of numbers, interpolating linearly between ranks.

    Args:
        values: The numbers to rank
        percentile: Which percentile, from 0 to 100 (50 is the median)

    Returns:
        The value below which that percentage of the numbers fall.
    """
    _require(values)
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {percentile}")
    ranked = sorted(values)
    position = (len(ranked) - 1) * percentile / 100
    low, high = math.floor(position), math.ceil(position)
    return round(ranked[low] + (ranked[high] - ranked[low]) * (position - low), 2)


def summarize_values(values: list[float]) -> dict:
    """Summarize a list of numbers in one call.

    Args:
        values: The numbers to summarize

    Returns:
        The count, mean, minimum, maximum and range (maximum minus minimum).
    """
    _require(values)
    low, high = min(values), max(values)
    mean = round(statistics.fmean(values), 2)
    return {"count": len(values), "mean": mean, "minimum": low, "maximum": high, "range": round(high - low, 2)}


def correlation_of(x: list[float], y: list[float]) -> float:
    """Compute the Pearson correlation between two equally long lists of numbers.

    Args:
        x: The first list of numbers
        y: The second list of numbers, paired with x position by position

    Returns:
        The correlation coefficient, from -1 to 1.
    """
    _require(x, 2, "x")
    if len(x) != len(y):
        raise ValueError(f"x and y must be equally long, got {len(x)} and {len(y)}")
    if len(set(x)) == 1 or len(set(y)) == 1:
        raise ValueError("correlation is undefined when x or y is constant")
    return round(statistics.correlation(x, y), 2)


TOOLS = [mean_of, median_of, std_dev_of, percentile_of, summarize_values, correlation_of]

# ----------------------------------------------------------------------------- task templates


def _numbers(rng: random.Random) -> list[int]:
    return [rng.randint(1, 100) for _ in range(rng.randint(5, 8))]


def _listed(values: list[int]) -> str:
    return ", ".join(map(str, values))


def _mean(rng: random.Random) -> TaskDraft:
    values = _numbers(rng)
    call, answer = gold_call(mean_of, None, values=values)
    query = rng.choice(
        [
            f"What is the average of {_listed(values)}?",
            f"Compute the mean of these numbers: {_listed(values)}.",
        ]
    )
    return TaskDraft(query, [call], answer, "number", extra_tools=["median_of"])


def _median(rng: random.Random) -> TaskDraft:
    values = _numbers(rng)
    call, answer = gold_call(median_of, None, values=values)
    return TaskDraft(f"What is the median of {_listed(values)}?", [call], answer, "number", extra_tools=["mean_of"])


def _std_dev(rng: random.Random) -> TaskDraft:
    values, sample = _numbers(rng), rng.choice([True, False])
    call, answer = gold_call(std_dev_of, None, values=values, sample=sample)
    kind = "sample" if sample else "population"
    query = f"What is the {kind} standard deviation of {_listed(values)}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["summarize_values"])


def _percentile(rng: random.Random) -> TaskDraft:
    values, percentile = _numbers(rng), rng.choice([10, 25, 75, 90])
    call, answer = gold_call(percentile_of, None, values=values, percentile=percentile)
    query = f"What is the {percentile}th percentile of {_listed(values)}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["median_of"])


def _value_range(rng: random.Random) -> TaskDraft:
    values = _numbers(rng)
    call, answer = gold_call(summarize_values, "range", values=values)
    query = f"What is the range (largest minus smallest) of {_listed(values)}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["std_dev_of"])


def _correlation(rng: random.Random) -> TaskDraft:
    x = list(range(1, rng.randint(5, 7) + 1))
    slope = rng.choice([-3, -2, 2, 3])
    y = [slope * v + rng.randint(-2, 2) for v in x]  # too little noise to ever make y constant
    call, answer = gold_call(correlation_of, None, x=x, y=y)
    query = f"What is the Pearson correlation of x = {x} and y = {y}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["mean_of"])


TEMPLATES = [
    TaskTemplate("stats.mean", (FAMILY,), _mean),
    TaskTemplate("stats.median", (FAMILY,), _median),
    TaskTemplate("stats.std_dev", (FAMILY,), _std_dev),
    TaskTemplate("stats.percentile", (FAMILY,), _percentile),
    TaskTemplate("stats.value_range", (FAMILY,), _value_range),
    TaskTemplate("stats.correlation", (FAMILY,), _correlation),
]
