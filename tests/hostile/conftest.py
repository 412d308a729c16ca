"""Fixtures of the hostile-input tests."""

import pytest

from tests.hostile.corpus import cached_corpus


@pytest.fixture(scope="session")
def corpus():
    return cached_corpus()
