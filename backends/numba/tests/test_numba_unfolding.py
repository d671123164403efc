"""The numba backend's im2col + GEMM path: unfolding through stride phases (1-D, 2-D) or
directly (3-D), checked against the direct definition over strides, dilations, paddings,
boundary rules and groups, per worker and shared, and under NUMBA_BOUNDSCHECK."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convkit
from convkit.plugin import explicit_boundary, normalize_conv
from convkit.testing import direct_conv, error_bound

pytest.importorskip("convkit_numba")

from convkit_numba import _backend

RULES = ["fill", "wrap", "symm", "mirror", "nearest"]


def _assert_matches(problem, got):
    padded = explicit_boundary(problem)
    expected = direct_conv(padded)
    scale = direct_conv(padded, absolute=True)
    assert got.shape == expected.shape and got.dtype == problem.dtype
    assert (np.abs(got - expected) <= error_bound(problem, scale, "direct")).all()


@settings(max_examples=60, deadline=None)
@given(
    spatial=st.integers(1, 3),
    batch=st.integers(1, 5),
    channels=st.integers(1, 4),
    groups=st.sampled_from([1, 2]),
    size=st.integers(1, 12),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 3),
    rule=st.sampled_from(RULES),
    threads=st.sampled_from([1, 2, 3]),
    seed=st.integers(0, 2**16),
)
def test_the_gemm_path_matches_the_direct_definition(
    spatial, batch, channels, groups, size, kernel, stride, dilation, padding, rule, threads, seed
):
    reach = (kernel - 1) * dilation + 1
    if size + 2 * padding < reach:
        return  # no output
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels * groups) + (size,) * spatial).astype(np.float32)
    w = rng.standard_normal((3 * groups, channels) + (kernel,) * spatial).astype(np.float32)
    try:
        problem = normalize_conv(
            x, w, padding, stride, True, dilation, groups, None, "conv", boundary=rule
        )
    except ValueError:
        return  # a padding deeper than the rule allows
    convkit.set_num_threads(threads)  # the suite's fixture resets it
    _assert_matches(problem, _backend._conv_gemm(problem))


def test_a_strided_layer_with_every_rule_per_worker_and_shared():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5, 23, 19)).astype(np.float32)
    w = rng.standard_normal((7, 5, 5, 4)).astype(np.float32)
    for rule in RULES:
        for threads in (1, 2):  # 6 images: a pipeline per worker with 2 threads
            convkit.set_num_threads(threads)
            problem = normalize_conv(
                x, w, (3, 2), (2, 3), True, (1, 2), 1, None, "conv2d", boundary=rule
            )
            _assert_matches(problem, _backend._conv_gemm(problem))


BOUNDS_CHECKED = textwrap.dedent("""\
    import numpy as np
    from convkit.plugin import explicit_boundary, normalize_conv
    from convkit.testing import direct_conv
    from convkit_numba import _backend
    rng = np.random.default_rng(0)
    for rule in ("fill", "wrap", "symm", "mirror", "nearest"):
        for shape, kernel, padding, stride, dilation in [
            ((3, 2, 9, 11), (3, 3), 1, 2, 1),
            ((2, 3, 7, 5), (2, 4), (2, 3), (3, 1), (2, 1)),
            ((4, 2, 13), (5,), 4, 3, 2),
        ]:
            x = rng.standard_normal(shape)
            w = rng.standard_normal((4, shape[1], *kernel))
            problem = normalize_conv(x, w, padding, stride, True, dilation, 1, None, "conv", boundary=rule)
            expected = direct_conv(explicit_boundary(problem))
            assert np.allclose(_backend._conv_gemm(problem), expected), (rule, shape)
    print("ok")
""")


@pytest.mark.slow
def test_the_unfolding_kernels_under_numba_boundscheck(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BOUNDS_CHECKED],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"
