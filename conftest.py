"""Shared fixtures: every test starts and ends with convkit's default selection."""

import numpy as np
import pytest

import convkit


@pytest.fixture(autouse=True)
def _default_selection(monkeypatch):
    monkeypatch.delenv("CONVKIT_BACKEND", raising=False)
    convkit.set_backend(None)
    yield
    convkit.set_backend(None)
    convkit.set_num_threads(None)
    convkit.set_memory_limit(None)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
