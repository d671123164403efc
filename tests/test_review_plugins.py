"""A registered backend whose questions raise breaks no call that does not name it."""

import numpy as np
import pytest

import convkit
from convkit.plugin import Backend


class _Refuser(Backend):
    name = "review-raising-why-not"

    def convolve_nd(self, problem):
        return np.zeros(problem.output_shape, problem.dtype)

    def why_not(self, problem):
        raise RuntimeError("why_not exploded")


class _Unestimated(Backend):
    name = "review-raising-estimate"

    def convolve_nd(self, problem):
        return np.zeros(problem.output_shape, problem.dtype)

    def estimate_seconds(self, problem):
        raise RuntimeError("estimate exploded")


@pytest.fixture
def raising_backends(monkeypatch):
    monkeypatch.delenv("CONVKIT_BACKEND", raising=False)
    backends = [_Refuser(), _Unestimated()]
    for backend in backends:
        convkit.register_backend(backend)
    yield
    for backend in backends:
        convkit.unregister_backend(backend.name)


def test_auto_skips_a_backend_whose_why_not_or_estimate_raises(raising_backends):
    expected = np.convolve(np.arange(5.0), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(convkit.convolve_nd(np.arange(5.0), [1.0, 2.0, 3.0]), expected)
    report = str(convkit.explain("convolve_nd", np.arange(5.0), [1.0, 2.0, 3.0]))
    assert "its why_not failed: RuntimeError: why_not exploded" in report


def test_naming_a_backend_whose_why_not_raises_says_so(raising_backends):
    with pytest.raises(convkit.BackendUnavailableError, match="why_not exploded"):
        convkit.convolve_nd(np.ones(5), np.ones(3), backend=_Refuser.name)


@pytest.mark.parametrize("estimate", [float("nan"), float("inf"), -1, "lots", None])
def test_a_working_set_that_is_not_a_finite_count_is_refused(estimate):
    """NaN compares false with any limit: without the check the call ran unchecked."""

    class Vague(Backend):
        name = "test-vague-working-set"

        def convolve_nd(self, problem):
            return np.zeros(problem.output_shape, dtype=problem.dtype)

        def working_set_bytes(self, problem):
            return estimate

    convkit.register_backend(Vague())
    try:
        convkit.set_memory_limit(2000)
        with pytest.raises(
            convkit.BackendResultError, match="working_set_bytes must return a finite"
        ):
            convkit.convolve_nd(np.ones(5), np.ones(3), backend="test-vague-working-set")
    finally:
        convkit.unregister_backend("test-vague-working-set")
