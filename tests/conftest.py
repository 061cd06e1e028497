from pathlib import Path

import pytest

from labkit.tools import load_catalog

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def misbehaving_catalog():
    return load_catalog([FIXTURES / "misbehaving_tools.py"], builtin=False)


@pytest.fixture(scope="session")
def tokenizer():
    from labkit.models import load_tokenizer

    return load_tokenizer()
