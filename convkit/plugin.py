"""The public plugin API: everything a backend author needs.

A backend distribution subclasses :class:`Backend`, declares its
:class:`Capabilities`, and registers the class under the entry-point group
``convkit.backends`` in its ``pyproject.toml``::

    [project.entry-points."convkit.backends"]
    mine = "my_package:MyBackend"

The core hands it normalized problems (:class:`ConvProblem`,
:class:`ConvolveProblem`, and for a backend that implements the optional
gradients ``conv_grad_input`` / ``conv_grad_filters``,
:class:`ConvGradInputProblem` / :class:`ConvGradFiltersProblem`; any other
backend runs the gradients as the ``conv`` problems they lower to, which
:func:`lowered_problems` lists); :func:`with_local_nonfinite` keeps NaN and inf
local for FFT methods, and :func:`all_finite` (one pass, no temporary) tells a
method that mixes values whether it may run as it is.  The shape geometry
(:func:`dilated_extent`, :func:`conv_padding`, :func:`conv_output_length`,
:func:`conv_output_shape`, :func:`convolve_output_region`,
:func:`convolved_axes`, :func:`kernel_operand`) is the core's own, so a
backend computes sizes exactly as the core does.  :func:`normalize_conv` and
:func:`normalize_convolve` build problems (they take keywords), and so do
:func:`normalize_conv_grad_input` and :func:`normalize_conv_grad_filters`.  A
problem whose signal continues by a boundary rule (``problem.boundary``)
reaches a backend only if its :attr:`Capabilities.boundaries` names the rule;
:func:`extension_index` says which sample each outside position reads, and
:func:`explicit_boundary` turns such a problem into one on a padded copy (for
a backend that extends the rule on some of its paths only).
:func:`resolve_backend` gives the loaded object behind a backend's name, and
:func:`why_cannot_run` says why a backend cannot run a problem.  The README's
"Writing a backend" walks through a complete example.
"""

from convkit._adjoint import lowered_problems
from convkit._backend import ALL_DTYPES, FLOAT_DTYPES, Availability, Backend, Capabilities
from convkit._boundary import explicit_boundary, extension_index
from convkit._config import get_num_threads
from convkit._discovery import ENTRY_POINT_GROUP, resolve_backend, why_cannot_run
from convkit._geometry import (
    conv_output_length,
    conv_output_shape,
    conv_padding,
    convolve_output_region,
    convolved_axes,
    dilated_extent,
    kernel_operand,
)
from convkit._gradient_problems import (
    ConvGradFiltersProblem,
    ConvGradInputProblem,
    normalize_conv_grad_filters,
    normalize_conv_grad_input,
)
from convkit._nonfinite import all_finite, with_local_nonfinite
from convkit._problems import ConvolveProblem, ConvProblem, Problem
from convkit._validation import normalize_conv, normalize_convolve

__all__ = [
    "ALL_DTYPES",
    "ENTRY_POINT_GROUP",
    "FLOAT_DTYPES",
    "Availability",
    "Backend",
    "Capabilities",
    "ConvGradFiltersProblem",
    "ConvGradInputProblem",
    "ConvProblem",
    "ConvolveProblem",
    "Problem",
    "all_finite",
    "conv_output_length",
    "conv_output_shape",
    "conv_padding",
    "convolve_output_region",
    "convolved_axes",
    "dilated_extent",
    "explicit_boundary",
    "extension_index",
    "get_num_threads",
    "kernel_operand",
    "lowered_problems",
    "normalize_conv",
    "normalize_conv_grad_filters",
    "normalize_conv_grad_input",
    "normalize_convolve",
    "resolve_backend",
    "why_cannot_run",
    "with_local_nonfinite",
]
