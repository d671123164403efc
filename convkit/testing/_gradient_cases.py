"""The gradients in the equivalence matrix: cases, direct definitions, the check.

Every conv case of the matrix gives three more: ``conv_grad_input``,
``conv_grad_filters`` and ``conv_transpose`` of the same layer (same shapes,
border mode, stride, dilation, groups, flip, boundary, layout, non-finite
values and range), with the other operand of each call drawn from the case's
seed.  The oracle is the float64 direct definition of each gradient, written
from the forward definition (for each kernel tap, the input position every
output reads), independently of how the core lowers gradients to forward
convs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

import convkit
from convkit.plugin import (
    Backend,
    conv_output_shape,
    conv_padding,
    lowered_problems,
    normalize_conv_grad_filters,
    normalize_conv_grad_input,
    resolve_backend,
    why_cannot_run,
)
from convkit.testing._bound import BASE_TOLERANCE
from convkit.testing._cases import Case
from convkit.testing._check import CaseResult, _nonfinite_mismatch, to_numpy

__all__ = [
    "GRADIENT_OPERATIONS",
    "check_gradient_case",
    "direct_conv_grad_filters",
    "direct_conv_grad_input",
    "gradient_cases",
    "gradient_problem",
]

#: The gradient operations of the matrix (the public functions' names).
GRADIENT_OPERATIONS = ("conv_grad_input", "conv_grad_filters", "conv_transpose")
_PAD_MODES = {
    "wrap": "wrap",
    "symm": "symmetric",
    "symmetric": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
}
_TINY = {"float32": 1e-30, "float64": 1e-300}
_FORWARD_KEYS = ("border_mode", "subsample", "filter_flip", "filter_dilation", "num_groups")


def _per_axis(value, count: int) -> tuple[int, ...]:
    return (int(value),) * count if np.ndim(value) == 0 else tuple(int(v) for v in value)


def _layer(shape, kernel, border_mode, subsample, filter_dilation):
    """Padding, stride and dilation per spatial axis of a forward conv."""
    spatial = tuple(shape[2:])
    padding = conv_padding(border_mode, spatial, kernel, subsample, filter_dilation)
    return padding, _per_axis(subsample, len(spatial)), _per_axis(filter_dilation, len(spatial))


def _sources(length: int, padding: tuple[int, int], boundary: str) -> np.ndarray:
    """For each position of the padded input, the sample it holds; -1 for zero fill."""
    before, after = padding
    if boundary == "fill":
        positions = np.arange(length + before + after) - before
        return np.where((positions >= 0) & (positions < length), positions, -1)
    return np.pad(np.arange(length), (before, after), mode=_PAD_MODES[boundary])


def _wide(*arrays: np.ndarray, absolute: bool) -> list[np.ndarray]:
    if absolute:
        return [np.abs(array).astype(np.float64) for array in arrays]
    complex_ = any(np.iscomplexobj(array) for array in arrays)
    return [array.astype(np.complex128 if complex_ else np.float64) for array in arrays]


def _taps(kernel: tuple[int, ...]):
    return itertools.product(*(range(k) for k in kernel))


def _reads(tap, out_shape, stride, dilation, sources):
    """Per axis, the input sample each output reads at ``tap`` (-1: none), as index arrays."""
    return [
        source[np.arange(count) * step + k * dil]
        for k, count, step, dil, source in zip(tap, out_shape, stride, dilation, sources)
    ]


def direct_conv_grad_input(
    output_grad: np.ndarray,
    filters: np.ndarray,
    input_shape: tuple[int, ...],
    border_mode="valid",
    subsample=1,
    filter_flip: bool = True,
    filter_dilation=1,
    num_groups: int = 1,
    boundary: str = "fill",
    absolute: bool = False,
) -> np.ndarray:
    """The input gradient of a conv by the direct definition, in float64 (complex128).

    ``grad[n, c, i]`` sums ``output_grad[n, f, o] * w[f, c, k]`` over the
    filters ``f`` of ``c``'s group, the outputs ``o`` and the taps ``k`` with
    which the forward reads sample ``i`` (through the boundary rule's copies
    too), where ``w`` is ``filters`` flipped when ``filter_flip``.  With
    ``absolute=True`` the operands are replaced by their absolute values (the
    scale of the error bound).

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.testing import direct_conv_grad_input
    >>> direct_conv_grad_input(np.ones((1, 1, 2)), np.array([[[1.0, 2.0]]]), (1, 1, 5),
    ...                        subsample=2)
    array([[[2., 1., 2., 1., 0.]]])
    """
    grad, weights = _wide(np.asarray(output_grad), np.asarray(filters), absolute=absolute)
    kernel = weights.shape[2:]
    if filter_flip:
        weights = weights[(slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)]
    padding, stride, dilation = _layer(input_shape, kernel, border_mode, subsample, filter_dilation)
    batch, channels, *spatial = input_shape
    groups = num_groups
    count, group_channels = weights.shape[:2]
    grouped_grad = grad.reshape(batch, groups, count // groups, *grad.shape[2:])
    grouped_weights = weights.reshape(groups, count // groups, group_channels, *kernel)
    result = np.zeros((batch, groups, group_channels, *spatial), dtype=grad.dtype)
    sources = [_sources(n, pad, boundary) for n, pad in zip(spatial, padding)]
    for tap in _taps(kernel):
        reads = _reads(tap, grad.shape[2:], stride, dilation, sources)
        kept = [np.flatnonzero(read >= 0) for read in reads]
        if any(index.size == 0 for index in kept):
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            terms = np.einsum("ngf...,gfc->ngc...", grouped_grad, grouped_weights[(Ellipsis, *tap)])
            np.add.at(
                result,
                (
                    slice(None),
                    slice(None),
                    slice(None),
                    *np.ix_(*(r[k] for r, k in zip(reads, kept))),
                ),
                terms[(Ellipsis, *np.ix_(*kept))],
            )
    return result.reshape(input_shape)


def direct_conv_grad_filters(
    input: np.ndarray,
    output_grad: np.ndarray,
    filter_shape: tuple[int, ...],
    border_mode="valid",
    subsample=1,
    filter_flip: bool = True,
    filter_dilation=1,
    num_groups: int = 1,
    boundary: str = "fill",
    absolute: bool = False,
) -> np.ndarray:
    """The filter gradient of a conv by the direct definition, in float64 (complex128).

    ``grad[f, c, k]`` sums ``output_grad[n, f, o] * x[n, c', position]`` over
    the batch and the outputs, where ``position`` is the sample the forward
    reads at tap ``k`` (none in zero padding), ``c'`` the input channel ``c``
    of ``f``'s group; the taps are reversed when ``filter_flip``.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.testing import direct_conv_grad_filters
    >>> direct_conv_grad_filters(np.array([[[1.0, 2.0, 3.0, 4.0]]]), np.ones((1, 1, 3)),
    ...                          (1, 1, 2), filter_flip=False)
    array([[[6., 9.]]])
    """
    data, grad = _wide(np.asarray(input), np.asarray(output_grad), absolute=absolute)
    kernel = tuple(filter_shape[2:])
    padding, stride, dilation = _layer(data.shape, kernel, border_mode, subsample, filter_dilation)
    batch, channels, *spatial = data.shape
    groups = num_groups
    count, group_channels = filter_shape[:2]
    grouped_data = data.reshape(batch, groups, group_channels, *spatial)
    grouped_grad = grad.reshape(batch, groups, count // groups, *grad.shape[2:])
    result = np.zeros((groups, count // groups, group_channels, *kernel), dtype=data.dtype)
    sources = [_sources(n, pad, boundary) for n, pad in zip(spatial, padding)]
    for tap in _taps(kernel):
        reads = _reads(tap, grad.shape[2:], stride, dilation, sources)
        inside = np.ones(grad.shape[2:], dtype=bool)
        for axis, read in enumerate(reads):
            shape = [1] * len(reads)
            shape[axis] = -1
            inside = inside & (read >= 0).reshape(shape)
        gathered = grouped_data[(Ellipsis, *np.ix_(*(np.maximum(read, 0) for read in reads)))]
        # Both factors of a term outside the input are 0, so no NaN comes from 0 * inf.
        with np.errstate(invalid="ignore", over="ignore"):
            result[(Ellipsis, *tap)] = np.einsum(
                "ngcp,ngfp->gfc",
                np.where(inside, gathered, 0).reshape(*gathered.shape[:3], -1),
                np.where(inside, grouped_grad, 0).reshape(*grouped_grad.shape[:3], -1),
            )
    result = result.reshape(filter_shape)
    if filter_flip:
        result = result[(slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)]
    return np.ascontiguousarray(result)


def gradient_cases(cases: list[Case]) -> list[Case]:
    """The three gradient cases of every conv case in ``cases``.

    A case whose layer has a non-zero ``fillvalue`` gives gradients with
    zero fill (the gradients take no fill value).

    Examples
    --------
    >>> from convkit.testing import Case
    >>> from convkit.testing._gradient_cases import gradient_cases
    >>> layer = (("border_mode", "half"), ("subsample", 2), ("filter_flip", True),
    ...          ("filter_dilation", 1), ("num_groups", 1))
    >>> [(case.operation, case.shapes) for case in
    ...  gradient_cases([Case("conv", ((1, 2, 7), (3, 2, 3)), "float64", layer)])]
    [('conv_grad_input', ((1, 3, 4), (3, 2, 3))), ('conv_grad_filters', ((1, 2, 7), (1, 3, 4))), ('conv_transpose', ((1, 3, 4), (3, 2, 3)))]
    """
    derived = []
    for case in cases:
        if case.operation != "conv":
            continue
        params = case.kwargs
        input_shape, filter_shape = case.shapes
        if len(input_shape) < 3 or len(filter_shape) != len(input_shape):
            continue
        try:
            spatial = conv_output_shape(
                input_shape[2:],
                filter_shape[2:],
                params["border_mode"],
                params["subsample"],
                params["filter_dilation"],
            )
        except (TypeError, ValueError):
            continue
        if 0 in spatial:
            continue
        output_shape = (input_shape[0], filter_shape[0], *spatial)
        layer = tuple((key, params[key]) for key in _FORWARD_KEYS)
        if params.get("fillvalue", 0) == 0 and params.get("boundary", "fill") != "fill":
            layer += (("boundary", params["boundary"]),)
        transposed = tuple(
            ("input_dilation", value) if key == "subsample" else (key, value)
            for key, value in layer
        )
        common = dict(
            dtype=case.dtype,
            layout=case.layout,
            nonfinite=case.nonfinite,
            exponents=case.exponents,
            positive=case.positive,
            # The forward's tags, marked, so that a selection of forward cases by tag stays one.
            tags=("gradient", *(f"gradient-of-{tag}" for tag in case.tags)),
        )
        derived += [
            Case(
                "conv_grad_input",
                (output_shape, filter_shape),
                params=(("input_shape", tuple(input_shape)), *layer),
                **common,
            ),
            Case(
                "conv_grad_filters",
                (input_shape, output_shape),
                params=(("filter_shape", tuple(filter_shape)), *layer),
                **common,
            ),
            Case(
                "conv_transpose",
                (output_shape, filter_shape),
                params=(("output_shape", tuple(input_shape)), *transposed),
                **common,
            ),
        ]
    return derived


def _forward_params(case: Case) -> tuple[tuple[int, ...], dict]:
    """The case's shape argument and its layer as the forward's keyword arguments."""
    params = case.kwargs
    shape = params.pop(
        {
            "conv_grad_input": "input_shape",
            "conv_grad_filters": "filter_shape",
            "conv_transpose": "output_shape",
        }[case.operation]
    )
    if "input_dilation" in params:
        params["subsample"] = params.pop("input_dilation")
    return shape, params


def gradient_problem(case: Case, first: np.ndarray, second: np.ndarray):
    """The normalized problem of a gradient case (or its finished result)."""
    shape, params = _forward_params(case)
    if case.operation == "conv_grad_filters":
        return normalize_conv_grad_filters(first, second, shape, **params)
    return normalize_conv_grad_input(first, second, shape, **params)


def _reference(case: Case, first, second, absolute: bool = False) -> np.ndarray:
    shape, params = _forward_params(case)
    direct = (
        direct_conv_grad_filters
        if case.operation == "conv_grad_filters"
        else direct_conv_grad_input
    )
    return direct(first, second, shape, **params, absolute=absolute)


def _term_counts(case: Case, first, second) -> np.ndarray:
    """How many products each output sums (the count of the direct definition's terms)."""
    return _reference(case, np.ones(first.shape), np.ones(second.shape)).real


def _method(engine: Backend, operation: str, problem) -> str:
    """How the backend rounds: natively as it declares, else as the convs it lowers to."""
    declared = engine.capabilities.operations
    if hasattr(engine, operation) and (declared is None or operation in declared):
        return engine.method(problem)
    methods = {engine.method(part) for part in lowered_problems(problem)}
    return "fft" if "fft" in methods else "direct"


def _bound(case: Case, problem, first, second, scale, counts, method) -> np.ndarray:
    """The error bound of :func:`convkit.testing.error_bound`, for a gradient's sums."""
    name = "float32" if np.dtype(case.dtype) in (np.float32, np.complex64) else "float64"
    eps = float(np.finfo(name).eps)
    terms = max(1.0, float(counts.max()) if counts.size else 1.0)
    bound = max(BASE_TOLERANCE[name], 4 * eps * math.sqrt(terms)) * scale + _TINY[name]
    if method != "fft":
        return bound
    # An FFT spreads its rounding over every position its transform computes: all the
    # lowered convs' outputs (for the filter gradient, every tap between dilated taps).
    points = max(
        math.prod(
            size + before + after + (k - 1) * dil
            for size, (before, after), k, dil in zip(
                part.input.shape[2:], part.padding, part.kernel_shape, part.dilation
            )
        )
        for part in lowered_problems(problem)
    )
    finite = [np.where(np.isfinite(a), a, 0) for a in (first, second)]
    spread = _reference(case, *finite, absolute=True)
    if case.operation == "conv_grad_filters":
        shape, params = _forward_params(case)
        kernel = shape[2:]
        dilation = _per_axis(params["filter_dilation"], len(kernel))
        padding = conv_padding(
            params["border_mode"], first.shape[2:], kernel, params["subsample"], dilation
        )
        dense = (*shape[:2], *((k - 1) * d + 1 for k, d in zip(kernel, dilation)))
        spread = direct_conv_grad_filters(
            *finite,
            dense,
            padding,
            params["subsample"],
            False,
            1,
            params["num_groups"],
            params.get("boundary", "fill"),
            absolute=True,
        )
    largest = float(spread.max()) if spread.size else 0.0
    return bound + eps * math.log2(max(points, 2)) * (scale + largest)


def check_gradient_case(backend: str | Backend, case: Case) -> CaseResult:
    """Run one gradient case on ``backend`` through the public API and judge it.

    As :func:`convkit.testing.check_case`: the right shape and dtype,
    non-finite outputs exactly where the direct definition has them, exact
    zeros where its sum has no terms, every finite output within the bound,
    the inputs unchanged.
    """
    engine = resolve_backend(backend)
    first, second = case.arrays()
    before = (first.copy(), second.copy())
    problem = gradient_problem(case, first, second)
    if isinstance(problem, np.ndarray):
        return CaseResult(case, "pass", message="trivial: solved by the core")
    reason = why_cannot_run(engine, problem)
    if reason:
        return CaseResult(case, "skip", message=reason)
    method = _method(engine, problem.operation, problem)
    try:
        result = to_numpy(
            getattr(convkit, case.operation)(first, second, **case.kwargs, backend=engine)
        )
    except Exception as error:  # noqa: BLE001 - any exception is a finding to report
        return CaseResult(
            case, "fail", method, math.inf, math.inf, f"raised {type(error).__name__}: {error}"
        )
    if not (
        np.array_equal(first, before[0], equal_nan=True)
        and np.array_equal(second, before[1], equal_nan=True)
    ):
        return CaseResult(case, "fail", method, math.inf, math.inf, "modified its inputs")
    shape, _ = _forward_params(case)
    if result.shape != tuple(shape) or result.dtype != problem.dtype:
        return CaseResult(
            case,
            "fail",
            method,
            math.inf,
            math.inf,
            f"returned shape {result.shape} dtype {result.dtype}, expected {tuple(shape)} "
            f"{problem.dtype}",
        )
    expected = _reference(case, first, second)
    mismatch = _nonfinite_mismatch(result, expected)
    if mismatch:
        return CaseResult(
            case, "fail", method, math.inf, math.inf, f"non-finite outputs: {mismatch}"
        )
    counts = _term_counts(case, first, second)
    without_terms = (counts == 0) & (result != 0)
    if without_terms.any():
        index = tuple(int(i) for i in np.argwhere(without_terms)[0])
        return CaseResult(
            case,
            "fail",
            method,
            math.inf,
            math.inf,
            f"{int(without_terms.sum())} outputs whose sums have no terms are not exactly 0 "
            f"(first at {index}: got {result[index]!r})",
        )
    finite = np.isfinite(expected)
    if not finite.any():
        return CaseResult(case, "pass", method)
    scale = _reference(case, first, second, absolute=True)
    scale = np.where(np.isfinite(scale) & finite, scale, 0.0)
    bound = _bound(case, problem, first, second, scale, counts, method)
    with np.errstate(invalid="ignore"):
        error = np.where(finite, np.abs(result.astype(expected.dtype) - expected), 0.0)
    ratio = error / bound
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    worst_ratio, max_error = float(ratio[worst]), float(error.max())
    if worst_ratio <= 1.0:
        return CaseResult(case, "pass", method, worst_ratio, max_error)
    index = tuple(int(i) for i in worst)
    return CaseResult(
        case,
        "fail",
        method,
        worst_ratio,
        max_error,
        f"{int((ratio > 1).sum())} of {ratio.size} outputs outside the {method} error bound; "
        f"worst at {index}: got {result[index]!r}, expected {expected[index]!r}, error "
        f"{error[index]:.3g} = {worst_ratio:.3g} x the bound {bound[index]:.3g}",
    )
