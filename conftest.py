"""The project's test levels and shared fixtures, for tests/ and every backends/<engine>/tests.

``python -m pytest`` is the quick loop: it skips the tests marked ``slow`` (simulator and
bounds-checked runs, documentation builds, fresh processes that compile). ``--run-slow`` runs
them too; ``--convkit-full`` (the conformance kit's option) runs the full matrix.
"""

import importlib.util

import numpy as np
import pytest

import convkit

# The autograd bridges import their framework when imported; without it, their doctests
# cannot be collected (their tests in tests/ skip on their own).
collect_ignore = [
    f"convkit/{framework}.py"
    for framework in ("pytensor", "torch")
    if importlib.util.find_spec(framework) is None
]


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (the quick loop skips them; CI runs them)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
