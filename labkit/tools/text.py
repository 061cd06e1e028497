"""Text: counting, searching and reshaping short pieces of English text."""

import random
import re
from collections import Counter
from typing import Literal

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call

FAMILY = "text"

# Words that carry no topic, left out of keywords.
STOPWORDS = frozenset(
    "a an and are as at be but by do for from has have in is it its not of on or so that the their they this to was "
    "were while will with".split()
)
# Sample texts the tasks ask about, each with how many of its top keywords are clear-cut
# (strictly more frequent than every word ranked below them).
SENTENCES = {
    "The quick brown fox jumps over the lazy dog and the dog sleeps": 1,
    "Sea otters hold hands so sea otters stay together in the sea": 2,
    "Every journey begins with one step and every step counts": 2,
    "Bees make honey and honey feeds the bees all winter": 2,
    "The river flows past the old mill and the river keeps the mill turning": 2,
    "Practice makes progress and progress builds confidence": 1,
    "Cats chase mice and mice chase crumbs while cats nap": 3,
    "Good code is read many more times than it is written so write code for readers": 1,
}
WORDS = ["planet", "lantern", "rhythm", "orbit", "compass", "harbor", "meadow", "velvet", "whisper", "gravity"]
PHRASES = [
    "monthly sales report",
    "Hello World Again",
    "user account settings",
    "quarterly budget review",
    "Open Source Rocks",
]
CASE_STYLES = ("upper", "lower", "title", "snake", "kebab")


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


def count_words(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count words in

    Returns:
        The number of words.
    """
    return len(_words(text))


def count_characters(text: str, include_spaces: bool = True) -> int:
    """Count the characters in a text.

    Args:
        text: The text to measure
        include_spaces: Whether spaces and other whitespace count as characters

    Returns:
        The number of characters.
    """
    return len(text) if include_spaces else len(re.sub(r"\s", "", text))


def count_occurrences(text: str, word: str) -> dict:
    """Count how often a word appears in a text, ignoring case and matching whole words only.

    Args:
        text: The text to search
        word: The word to look for

    Returns:
        The word and how many times it appears.
    """
    target = word.strip().casefold()
    if not target:
        raise ValueError("word must not be empty")
    return {"word": word.strip(), "count": sum(w.casefold() == target for w in _words(text))}


def reverse_text(text: str) -> str:
    """Reverse a text character by character.

    Args:
        text: The text to reverse

    Returns:
        The text backwards.
    """
    return text[::-1]


def change_case(text: str, style: Literal["upper", "lower", "title", "snake", "kebab"]) -> str:
    """Rewrite a text in another letter case.

    Args:
        text: The text to rewrite
        style: Case style name: upper, lower, title, snake (like_this) or kebab (like-this)

    Returns:
        The rewritten text.
    """
    folded = style.strip().casefold()
    if folded not in CASE_STYLES:
        raise ValueError(f"unknown case style {style!r}")
    if folded in ("snake", "kebab"):
        return ("_" if folded == "snake" else "-").join(w.casefold() for w in _words(text))
    return {"upper": text.upper(), "lower": text.lower(), "title": text.title()}[folded]


def extract_keywords(text: str, top_k: int = 3) -> list[str]:
    """Find the most frequent meaningful words of a text, leaving out words like "the" and "and".

    Args:
        text: The text to analyse
        top_k: How many keywords to return, at least 1

    Returns:
        The keywords in lower case, most frequent first; ties in alphabetical order.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    counts = Counter(w.casefold() for w in _words(text) if w.casefold() not in STOPWORDS)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return ranked[:top_k]


TOOLS = [count_words, count_characters, count_occurrences, reverse_text, change_case, extract_keywords]

# ----------------------------------------------------------------------------- task templates


def _word_count(rng: random.Random) -> TaskDraft:
    text = rng.choice(sorted(SENTENCES))
    call, answer = gold_call(count_words, None, text=text)
    return TaskDraft(f'How many words are in "{text}"?', [call], answer, "number", extra_tools=["count_characters"])


def _character_count(rng: random.Random) -> TaskDraft:
    text, include_spaces = rng.choice(WORDS + PHRASES), rng.choice([True, False])
    call, answer = gold_call(count_characters, None, text=text, include_spaces=include_spaces)
    spaces = "counting spaces" if include_spaces else "not counting spaces"
    query = f'How many characters are in "{text}", {spaces}?'
    return TaskDraft(query, [call], answer, "number", extra_tools=["count_words"])


def _reversed_word(rng: random.Random) -> TaskDraft:
    word = rng.choice(WORDS)
    call, answer = gold_call(reverse_text, None, text=word)
    query = rng.choice([f'Reverse the word "{word}".', f'What is "{word}" spelled backwards?'])
    return TaskDraft(query, [call], answer, "exact", extra_tools=["change_case"])


def _case_change(rng: random.Random) -> TaskDraft:
    # Only the separator styles: answer checks ignore letter case.
    phrase, style = rng.choice(PHRASES), rng.choice(["snake", "kebab"])
    call, answer = gold_call(change_case, None, text=phrase, style=style)
    return TaskDraft(f'Rewrite "{phrase}" in {style} case.', [call], answer, "exact", extra_tools=["reverse_text"])


def _keywords(rng: random.Random) -> TaskDraft:
    text = rng.choice(sorted(SENTENCES))
    top_k = SENTENCES[text]
    call, answer = gold_call(extract_keywords, None, text=text, top_k=top_k)
    asked = "the top keyword" if top_k == 1 else f"the top {top_k} keywords"
    return TaskDraft(f'Name {asked} of "{text}".', [call], answer, "set", extra_tools=["count_words"])


def _top_keyword_count(rng: random.Random) -> TaskDraft:
    text = rng.choice(sorted(SENTENCES))
    first, keyword = gold_call(extract_keywords, "0", text=text, top_k=1)
    second, answer = gold_call(count_occurrences, "count", text=text, word=keyword)
    query = f'Find the top keyword of "{text}". How many times does it appear?'
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["count_words"])


TEMPLATES = [
    TaskTemplate("text.word_count", (FAMILY,), _word_count),
    TaskTemplate("text.character_count", (FAMILY,), _character_count),
    TaskTemplate("text.reversed_word", (FAMILY,), _reversed_word),
    TaskTemplate("text.case_change", (FAMILY,), _case_change),
    TaskTemplate("text.keywords", (FAMILY,), _keywords),
    TaskTemplate("text.top_keyword_count", (FAMILY,), _top_keyword_count),
]
