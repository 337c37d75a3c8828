import collections

import numpy
import pytest

from jitgrad import api


@pytest.fixture
def rng():
    return numpy.random.default_rng(0)


@pytest.fixture
def builds(monkeypatch):
    """Counts how often a signature is traced and compiled."""
    count = collections.Counter()
    original = api._GradFunction._build

    def counting(self, *a, **k):
        count[self.name] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(api._GradFunction, "_build", counting)
    return count
