"""Outputs whose sums have no terms (the window lies in padding or between
dilated taps) are exactly 0 on every backend, and the kit says so."""

import itertools

import numpy as np
import pytest

import convkit
import convkit._api
from convkit._scipy_backend import ScipyBackend
from convkit._structure import outputs_without_terms
from convkit.plugin import normalize_conv, normalize_convolve
from convkit.testing import check_case, generate_cases
from convkit.testing._direct import conv_term_counts, direct_convolve_nd

BACKENDS = [
    name
    for name in ("scipy", "numba", "fftw")
    if any(b.name == name and b.available for b in convkit.list_backends())
]
FAST = generate_cases("fast")
WITHOUT_TERMS = [case for case in FAST if "without-terms" in case.tags]


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_between_dilated_taps_gives_exact_zeros(backend, rng):
    # Height 1, two taps 2 apart, padding 1: every window straddles the only row.
    x, w = rng.standard_normal((1, 1, 1, 8)), rng.standard_normal((1, 1, 2, 4))
    result = convkit.conv2d(x, w, border_mode="half", filter_dilation=2, backend=backend)
    assert result.shape == (1, 1, 1, 8) and result.dtype == np.float64
    assert np.all(result == 0), result


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_zeros_beside_outputs_with_terms(backend, dtype, rng):
    x = rng.standard_normal((2, 4, 3, 7)).astype(dtype)
    w = rng.standard_normal((6, 2, 2, 3)).astype(dtype)
    arguments = dict(
        border_mode=((4, 1), (7, 2)), subsample=(1, 2), filter_dilation=(3, 2), num_groups=2
    )
    result = convkit.conv2d(x, w, **arguments, backend=backend)
    problem = normalize_conv(
        x,
        w,
        border_mode=arguments["border_mode"],
        subsample=arguments["subsample"],
        filter_dilation=arguments["filter_dilation"],
        num_groups=2,
    )
    without = np.broadcast_to(conv_term_counts(problem) == 0, result.shape)
    assert without.any() and not without.all()
    assert np.all(result[without] == 0)
    reference = convkit.conv2d(
        x.astype(np.complex128), w.astype(np.complex128), **arguments, backend="scipy"
    )
    np.testing.assert_allclose(result, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kit_cases_without_terms_pass(backend):
    failures = [
        (case.id, result.message)
        for case in WITHOUT_TERMS
        if (result := check_case(backend, case)).status == "fail"
    ]
    assert not failures, failures[:3]


def test_geometry_matches_the_definition():
    for size, kernel, stride, dilation, before, after in itertools.product(
        (1, 2, 5), (1, 2, 3), (1, 2, 3), (1, 2, 3), (0, 1, 4, 7), (0, 3)
    ):
        if size + before + after - dilation * (kernel - 1) - 1 < 0:
            continue
        problem = normalize_conv(
            np.ones((1, 1, size, 2)),
            np.ones((1, 1, kernel, 1)),
            border_mode=((before, after), (0, 0)),
            subsample=(stride, 1),
            filter_dilation=(dilation, 1),
        )
        expected = conv_term_counts(problem)[:, 0] == 0
        found = outputs_without_terms(problem)
        if expected.any():
            assert [axis for axis, _ in found] == [2]
            np.testing.assert_array_equal(found[0][1], expected)
        else:
            assert found == []


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_convolve_nd_outputs_always_have_terms(mode):
    for first, second in [((5, 1), (3, 4)), ((1, 7), (6, 2)), ((2, 3), (2, 3))]:
        problem = normalize_convolve(np.ones(first), np.ones(second), mode=mode)
        assert outputs_without_terms(problem) == []
        assert (direct_convolve_nd(problem) >= 1).all()


def test_the_kit_covers_outputs_without_terms():
    covered = {(case.dtype, len(case.shapes[0]) - 2) for case in WITHOUT_TERMS}
    assert covered == set(
        itertools.product(("float32", "float64", "complex64", "complex128"), (1, 2, 3))
    )
    some, all_of_them = 0, 0
    for case in WITHOUT_TERMS:
        problem = normalize_conv(*case.arrays(), **case.kwargs)
        counts = conv_term_counts(problem)
        some += bool((counts == 0).any())
        all_of_them += bool((counts == 0).all())
    assert some >= len(WITHOUT_TERMS) // 2 and all_of_them >= 4
    small = generate_cases("small")
    assert sum("without-terms" in case.tags for case in small) >= len(WITHOUT_TERMS) * 3 // 4


class Noisy(ScipyBackend):
    """The reference with FFT-like rounding noise on every output."""

    name = "noisy"

    def conv(self, problem):
        return (super().conv(problem) + np.finfo(problem.dtype).tiny).astype(problem.dtype)


def test_kit_catches_noise_where_there_are_no_terms(monkeypatch):
    case = next(
        c
        for c in WITHOUT_TERMS
        if c.dtype == "float64" and c.shapes == ((1, 1, 1, 8), (1, 1, 2, 4))
    )
    assert check_case(Noisy(), case).status == "pass"  # the core writes the zeros
    monkeypatch.setattr(convkit._api, "zero_outputs_without_terms", lambda problem, result: None)
    result = check_case(Noisy(), case)
    assert result.status == "fail"
    assert "have no terms" in result.message and "are not exactly 0" in result.message
