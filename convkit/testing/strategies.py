"""Hypothesis strategies that draw :class:`convkit.testing.Case` objects.

Every strategy draws the boundary too (``fillvalue`` with ``"fill"``), and
the ones for convolve_nd and correlate_nd the missing-data policy
(``nan_policy``, with ``preserve_nan`` in ``"same"`` mode).  Narrow them with
their arguments to aim a property test at one axis.

Examples
--------
>>> from hypothesis import given, settings
>>> from convkit.testing import check_case
>>> from convkit.testing.strategies import cases
>>> @settings(max_examples=5, deadline=None)
... @given(cases())
... def test_scipy(case):
...     assert check_case("scipy", case).status == "pass"
>>> test_scipy()
"""

from __future__ import annotations

from hypothesis import strategies as st

from convkit.plugin import conv_padding, dilated_extent
from convkit.testing._cases import DTYPES, LAYOUTS, Case

__all__ = [
    "BOUNDARIES",
    "NAN_POLICIES",
    "boundaries",
    "cases",
    "chunkings",
    "conv_cases",
    "convolve_nd_cases",
    "correlate_nd_cases",
]

BOUNDARIES = ("fill", "wrap", "symm", "symmetric", "mirror", "nearest")
NAN_POLICIES = ("propagate", "interpolate", "fill")

_NONFINITE_VALUES = st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0])
_NONFINITE = st.lists(
    st.tuples(st.integers(0, 1), st.floats(0, 1), _NONFINITE_VALUES), max_size=3
).map(tuple)
# Missing samples of in1 only: "interpolate" is defined for those.
_MISSING = st.lists(
    st.tuples(st.just(0), st.floats(0, 1), _NONFINITE_VALUES), min_size=1, max_size=3
).map(tuple)


def boundaries(names: tuple[str, ...] = BOUNDARIES) -> st.SearchStrategy[tuple[str, float]]:
    """``(boundary, fillvalue)`` pairs: a fillvalue other than 0 only with ``"fill"``.

    Examples
    --------
    >>> from hypothesis import find
    >>> from convkit.testing.strategies import boundaries
    >>> find(boundaries(), lambda pair: pair[0] == "fill" and pair[1] != 0)
    ('fill', 0.5)
    """
    fill_values = st.sampled_from([0, 0.5, -1.5, 3.0])
    return st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), fill_values if name == "fill" else st.just(0))
    )


@st.composite
def conv_cases(
    draw, dtypes=DTYPES, max_size: int = 8, boundary_names: tuple[str, ...] = BOUNDARIES
) -> Case:
    """A conv case: any rank 1-3, border mode, stride, dilation, groups, flip, layout,
    boundary (one of ``boundary_names``).

    Inputs may be shorter than the dilated kernel and padding wider than it,
    so that some outputs have no terms (their window lies in padding or
    between dilated taps) or, with a boundary other than zero fill, repeat
    the rule more than once.
    """
    spatial = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    filters = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(spatial))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    border = draw(
        st.one_of(
            st.sampled_from(["valid", "full", "half", "same"]),
            st.integers(0, 4),
            st.tuples(*[st.tuples(st.integers(0, 4), st.integers(0, 4)) for _ in range(spatial)]),
        )
    )
    # "same" fits any input length; the other border modes pad independently of it.
    padding = (
        None
        if border == "same"
        else conv_padding(border, (1,) * spatial, kernel, filter_dilation=dilation)
    )
    sizes = []
    for axis, (k, d) in enumerate(zip(kernel, dilation)):
        smallest = 1 if padding is None else max(1, dilated_extent(k, d) - sum(padding[axis]))
        sizes.append(smallest + draw(st.integers(0, max_size)))
    boundary, fillvalue = draw(boundaries(boundary_names))
    params = (
        ("border_mode", border),
        ("subsample", stride),
        ("filter_flip", draw(st.booleans())),
        ("filter_dilation", dilation),
        ("num_groups", groups),
        ("boundary", boundary),
        ("fillvalue", fillvalue),
    )
    return Case(
        "conv",
        ((draw(st.integers(1, 2)), channels, *sizes), (filters, channels // groups, *kernel)),
        draw(st.sampled_from(dtypes)),
        params,
        draw(st.sampled_from(LAYOUTS)),
        draw(_NONFINITE),
    )


@st.composite
def _signal_cases(
    draw,
    operation: str,
    dtypes,
    max_size: int,
    boundary_names: tuple[str, ...],
    nan_policies: tuple[str, ...],
) -> Case:
    ndim = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    axes = draw(
        st.one_of(
            st.none(), st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
        )
    )
    convolved = range(ndim) if axes is None else axes
    shape1, shape2 = [], []
    for axis in range(ndim):
        if axis in convolved:
            a, b = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
            if mode == "valid":
                a, b = max(a, b), min(a, b)
        else:
            a = draw(st.integers(1, 3))
            b = draw(st.sampled_from([a, 1]))
            a, b = draw(st.sampled_from([(a, b), (b, a)]))
        shape1.append(a)
        shape2.append(b)
    if mode == "valid" and draw(st.booleans()):
        shape1, shape2 = shape2, shape1
    normalized_axes = None if axes is None else tuple(sorted(axes))
    boundary, fillvalue = draw(boundaries(boundary_names))
    params = (
        ("mode", mode),
        ("axes", normalized_axes),
        ("boundary", boundary),
        ("fillvalue", fillvalue),
    )
    policy = draw(st.sampled_from(nan_policies))
    if policy == "propagate":
        return Case(
            operation,
            (tuple(shape1), tuple(shape2)),
            draw(st.sampled_from(dtypes)),
            params,
            draw(st.sampled_from(LAYOUTS)),
            draw(_NONFINITE),
        )
    params += (("nan_policy", policy),)
    if policy == "interpolate" and mode == "same" and draw(st.booleans()):
        params += (("preserve_nan", True),)
    return Case(
        operation,
        (tuple(shape1), tuple(shape2)),
        draw(st.sampled_from(dtypes)),
        params,
        draw(st.sampled_from(LAYOUTS)),
        draw(_MISSING if policy == "interpolate" else _NONFINITE),
        gap=draw(st.integers(0, 3)),
        # Kernels for which "m (*) w is 0" is exact or far from it (see Case.kernel_values).
        kernel_values=(
            draw(st.sampled_from(["non-negative", "integers"]))
            if policy == "interpolate"
            else "normal"
        ),
    )


def convolve_nd_cases(
    dtypes=DTYPES,
    max_size: int = 10,
    boundary_names: tuple[str, ...] = BOUNDARIES,
    nan_policies: tuple[str, ...] = NAN_POLICIES,
) -> st.SearchStrategy[Case]:
    """A convolve_nd case: any rank 1-3, mode, axes subset, broadcasting, layout,
    boundary (one of ``boundary_names``) and nan_policy (one of ``nan_policies``).

    "interpolate" puts NaN and inf in in1 only, single or in holes up to 3
    samples wide, and draws a non-negative or small-integer in2 (so that
    which outputs it leaves undefined never depends on rounding).
    """
    return _signal_cases("convolve_nd", dtypes, max_size, boundary_names, nan_policies)


def correlate_nd_cases(
    dtypes=DTYPES,
    max_size: int = 10,
    boundary_names: tuple[str, ...] = BOUNDARIES,
    nan_policies: tuple[str, ...] = NAN_POLICIES,
) -> st.SearchStrategy[Case]:
    """A correlate_nd case, drawn as :func:`convolve_nd_cases` draws one."""
    return _signal_cases("correlate_nd", dtypes, max_size, boundary_names, nan_policies)


def cases(dtypes=DTYPES) -> st.SearchStrategy[Case]:
    """Any kind of case: conv, convolve_nd or correlate_nd."""
    return st.one_of(conv_cases(dtypes), convolve_nd_cases(dtypes), correlate_nd_cases(dtypes))


@st.composite
def chunkings(draw, shape: tuple[int, ...], max_blocks: int = 64, max_cuts: int = 4):
    """Chunks of a chunked (e.g. Dask) array of ``shape``: per axis, whole, regular chunks
    of 1 or 2 samples (shorter than most kernels' reach), or up to ``max_cuts`` cuts at
    random places (uneven chunks); an axis that would take the blocks past ``max_blocks``
    stays whole.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from convkit.testing.strategies import chunkings
    >>> @settings(max_examples=5)
    ... @given(chunkings((5, 4)))
    ... def test_chunks_cover_the_shape(chunks):
    ...     assert tuple(map(sum, chunks)) == (5, 4)
    >>> test_chunks_cover_the_shape()
    """
    chunks, blocks = [], 1
    for size in shape:
        kind = draw(st.sampled_from(["whole", "tiny", "cuts"]))
        if size > 1 and kind == "tiny":
            step = draw(st.integers(1, 2))
            axis_chunks = (step,) * (size // step) + ((size % step,) if size % step else ())
        elif size > 1 and kind == "cuts":
            cuts = sorted(draw(st.sets(st.integers(1, size - 1), min_size=1, max_size=max_cuts)))
            edges = [0, *cuts, size]
            axis_chunks = tuple(end - start for start, end in zip(edges, edges[1:]))
        else:
            axis_chunks = (size,)
        if blocks * len(axis_chunks) > max_blocks:
            axis_chunks = (size,)
        blocks *= len(axis_chunks)
        chunks.append(axis_chunks)
    return tuple(chunks)
