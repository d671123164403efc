"""The cross-backend equivalence matrix as pytest tests.

Run it against any installed backend::

    pytest --pyargs convkit.testing --convkit-backend NAME [--convkit-full]
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from convkit.testing import check_case
from convkit.testing.strategies import cases


def test_conformance(conformance_backend, conformance_case):
    result = check_case(conformance_backend, conformance_case)
    if result.status == "skip":
        pytest.skip(f"{conformance_backend} declares it cannot do this: {result.message}")
    assert result.status == "pass", f"{conformance_case.id}: {result.message}"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=cases())
def test_conformance_properties(conformance_backend_names, case):
    for backend in conformance_backend_names:
        result = check_case(backend, case)
        assert result.status in ("pass", "skip"), f"{backend}: {case.id}: {result.message}"
