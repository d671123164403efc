"""The conformance kit: the cross-backend equivalence matrix, for any backend.

Run it from the command line::

    python -m convkit check NAME [--full]

or under pytest::

    pytest --pyargs convkit.testing --convkit-backend NAME [--convkit-full]

or from Python with :func:`check_backend`.  The oracle is the float64 direct
definition (:func:`direct_conv`, :func:`direct_convolve_nd`; with a boundary,
:func:`extended_convolve_nd`; correlation through :func:`reverse_conjugate`;
``nan_policy="interpolate"``, :func:`normalized_convolve_nd`; for the
gradients every conv case also gives, :func:`direct_conv_grad_input` and
:func:`direct_conv_grad_filters`); the tolerance is :func:`error_bound` (and
:func:`quotient_bound` for the interpolated quotient); the cases come from
:func:`generate_cases` and, for
property-based tests, :mod:`convkit.testing.strategies` (needs hypothesis).
:func:`resolve_backend` gives a backend's object from its name, to call it
directly in a test.
``import convkit`` does not import this package.
"""

from convkit.plugin import resolve_backend
from convkit.testing._bound import BASE_TOLERANCE, error_bound, quotient_bound
from convkit.testing._cases import DTYPES, KERNEL_VALUES, LAYOUTS, Case, generate_cases
from convkit.testing._check import CaseResult, Report, check_backend, check_case
from convkit.testing._direct import (
    NormalizedConvolution,
    direct_conv,
    direct_convolve_nd,
    extended_convolve_nd,
    normalized_convolve_nd,
    reverse_conjugate,
)
from convkit.testing._gradient_cases import (
    GRADIENT_OPERATIONS,
    direct_conv_grad_filters,
    direct_conv_grad_input,
)

__all__ = [
    "BASE_TOLERANCE",
    "DTYPES",
    "GRADIENT_OPERATIONS",
    "KERNEL_VALUES",
    "LAYOUTS",
    "Case",
    "CaseResult",
    "NormalizedConvolution",
    "Report",
    "check_backend",
    "check_case",
    "direct_conv",
    "direct_conv_grad_filters",
    "direct_conv_grad_input",
    "direct_convolve_nd",
    "error_bound",
    "extended_convolve_nd",
    "generate_cases",
    "normalized_convolve_nd",
    "quotient_bound",
    "resolve_backend",
    "reverse_conjugate",
]
