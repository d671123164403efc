"""The conformance kit: the cross-backend equivalence matrix, for any backend.

Run it from the command line::

    python -m convkit check NAME [--full]

or under pytest::

    pytest --pyargs convkit.testing --convkit-backend NAME [--convkit-full]

or from Python with :func:`check_backend`.  The oracle is the float64 direct
definition (:func:`direct_conv`, :func:`direct_convolve_nd`, and for the
gradients every conv case also gives, :func:`direct_conv_grad_input` and
:func:`direct_conv_grad_filters`); the tolerance is
:func:`error_bound`; the cases come from :func:`generate_cases` and, for
property-based tests, :mod:`convkit.testing.strategies` (needs hypothesis).
:func:`resolve_backend` gives a backend's object from its name, to call it
directly in a test.
``import convkit`` does not import this package.
"""

from convkit.plugin import resolve_backend
from convkit.testing._bound import BASE_TOLERANCE, error_bound
from convkit.testing._cases import DTYPES, LAYOUTS, Case, generate_cases
from convkit.testing._check import CaseResult, Report, check_backend, check_case
from convkit.testing._direct import direct_conv, direct_convolve_nd
from convkit.testing._gradient_cases import (
    GRADIENT_OPERATIONS,
    direct_conv_grad_filters,
    direct_conv_grad_input,
)

__all__ = [
    "BASE_TOLERANCE",
    "DTYPES",
    "GRADIENT_OPERATIONS",
    "LAYOUTS",
    "Case",
    "CaseResult",
    "Report",
    "check_backend",
    "check_case",
    "direct_conv",
    "direct_conv_grad_filters",
    "direct_conv_grad_input",
    "direct_convolve_nd",
    "error_bound",
    "generate_cases",
    "resolve_backend",
]
