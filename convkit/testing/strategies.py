"""Hypothesis strategies that draw :class:`convkit.testing.Case` objects.

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

__all__ = ["cases", "conv_cases", "convolve_nd_cases"]

_NONFINITE = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.floats(0, 1),
        st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0]),
    ),
    max_size=3,
).map(tuple)


@st.composite
def conv_cases(draw, dtypes=DTYPES, max_size: int = 8) -> Case:
    """A conv case: any rank 1-3, border mode, stride, dilation, groups, flip, layout.

    Inputs may be shorter than the dilated kernel and padding wider than it,
    so that some outputs have no terms (their window lies in padding or
    between dilated taps).
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
    params = (
        ("border_mode", border),
        ("subsample", stride),
        ("filter_flip", draw(st.booleans())),
        ("filter_dilation", dilation),
        ("num_groups", groups),
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
def convolve_nd_cases(draw, dtypes=DTYPES, max_size: int = 10) -> Case:
    """A convolve_nd case: any rank 1-3, mode, axes subset, broadcasting, layout."""
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
    return Case(
        "convolve_nd",
        (tuple(shape1), tuple(shape2)),
        draw(st.sampled_from(dtypes)),
        (("mode", mode), ("axes", normalized_axes)),
        draw(st.sampled_from(LAYOUTS)),
        draw(_NONFINITE),
    )


def cases(dtypes=DTYPES) -> st.SearchStrategy[Case]:
    """Either kind of case."""
    return st.one_of(conv_cases(dtypes), convolve_nd_cases(dtypes))
