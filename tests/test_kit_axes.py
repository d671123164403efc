"""Property-based runs of the kit's boundary, correlation and missing-data axes on every
available CPU backend: hypothesis draws the cases (convkit.testing.strategies), the kit
judges them against its float64 references."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convkit
from convkit.testing import check_case
from convkit.testing.strategies import conv_cases, convolve_nd_cases, correlate_nd_cases

CPU_BACKENDS = [
    info.name
    for info in convkit.list_backends()
    if info.available and info.name in ("scipy", "numba", "fftw")
]
EXTENDING = ("wrap", "symm", "symmetric", "mirror", "nearest", "fill")


def _judge(case):
    for backend in CPU_BACKENDS:
        result = check_case(backend, case)
        assert result.status in ("pass", "skip"), f"{backend}: {case.id}: {result.message}"


@pytest.mark.skipif(not CPU_BACKENDS, reason="no CPU backend available")
@settings(max_examples=30, deadline=None)
@given(
    st.one_of(
        convolve_nd_cases(nan_policies=("interpolate", "fill")),
        correlate_nd_cases(nan_policies=("propagate", "interpolate", "fill")),
    )
)
def test_missing_data_and_correlation(case):
    _judge(case)


@pytest.mark.skipif(not CPU_BACKENDS, reason="no CPU backend available")
@settings(max_examples=25, deadline=None)
@given(
    st.one_of(
        conv_cases(boundary_names=EXTENDING),
        convolve_nd_cases(boundary_names=EXTENDING, nan_policies=("propagate",)),
    )
)
def test_boundaries(case):
    _judge(case)
