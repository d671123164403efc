"""Autotuning of "auto": time the plausible backends once per shape, keep the fastest."""

import time

import numpy as np
import pytest

import convkit
from convkit.plugin import Backend, Capabilities


class _OneDimensional(Backend):
    capabilities = Capabilities(operations=frozenset({"convolve_nd"}), max_spatial_dims=1)

    def __init__(self, estimate, delay):
        self._estimate, self._delay, self.calls = estimate, delay, 0

    def estimate_seconds(self, problem):
        return self._estimate

    def convolve_nd(self, problem):
        self.calls += 1
        time.sleep(self._delay)
        full = np.convolve(problem.in1, problem.in2)
        return full[problem.output_slices].astype(problem.dtype)


class Liar(_OneDimensional):
    name = "test-liar"


class Honest(_OneDimensional):
    name = "test-honest"


@pytest.fixture
def pair():
    liar, honest = Liar(1e-9, 0.02), Honest(5e-9, 0.0)
    convkit.register_backend(liar)
    convkit.register_backend(honest)
    yield liar, honest
    convkit.unregister_backend("test-liar")
    convkit.unregister_backend("test-honest")
    convkit.set_autotune(None)


def test_without_autotune_auto_trusts_the_estimates(pair, monkeypatch):
    liar, honest = pair
    monkeypatch.delenv("CONVKIT_AUTOTUNE", raising=False)
    convkit.set_autotune(None)
    assert convkit.get_autotune() is False
    convkit.convolve_nd(np.ones(10), np.ones(3))
    assert liar.calls == 1 and honest.calls == 0


def test_autotune_times_once_per_shape_and_keeps_the_fastest(pair):
    liar, honest = pair
    convkit.set_autotune(True)
    result = convkit.convolve_nd(np.arange(10.0), np.ones(3))
    assert np.allclose(result, np.convolve(np.arange(10.0), np.ones(3)))
    timed_liar = liar.calls
    assert timed_liar == 2 and honest.calls == 3  # each: a warm-up and a timed run; the answer
    for _ in range(3):
        convkit.convolve_nd(np.arange(10.0), np.ones(3))
    assert liar.calls == timed_liar  # the choice is remembered for this shape
    convkit.convolve_nd(np.arange(12.0), np.ones(3))  # a new shape is timed again
    assert liar.calls == timed_liar + 2


def test_autotune_from_the_environment(pair, monkeypatch):
    monkeypatch.setenv("CONVKIT_AUTOTUNE", "1")
    convkit.set_autotune(None)
    assert convkit.get_autotune() is True
    _, honest = pair
    convkit.convolve_nd(np.ones(10), np.ones(3))
    convkit.convolve_nd(np.ones(10), np.ones(3))
    assert honest.calls == 4  # two to time it, then one for each call


def test_set_autotune_rejects_other_values():
    with pytest.raises(TypeError, match="True, False or None"):
        convkit.set_autotune("yes")
