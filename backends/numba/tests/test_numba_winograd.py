"""The numba backend's Winograd paths, F(4x4, 3x3) and F(2x2, 3x3), for 3x3 stride-1 layers.

The conformance matrix's layers are mostly too small to take these paths
(they need >= 16 channels and filters, and enough work for a GEMM), so they
are checked here against the direct definition: held to the bound of a
direct method over paddings, odd and tiny sizes, boundary rules, both float
dtypes and both flips, and on data whose magnitudes change sharply from
sample to sample (regions of zeros or of much smaller values, spikes); held
to the transform bound the backend declares for them on data of any
dynamic range.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convkit
from convkit.plugin import explicit_boundary, normalize_conv, normalize_conv_grad_input
from convkit.testing import direct_conv, error_bound

pytest.importorskip("convkit_numba")

from convkit_numba import _winograd
from convkit_numba._backend import NumbaBackend


def _assert_within_direct_bound(problem, got, method="direct"):
    padded = explicit_boundary(problem)  # a boundary rule's samples, in a padded copy
    expected = direct_conv(padded)
    scale = direct_conv(padded, absolute=True)
    assert got.shape == expected.shape and got.dtype == problem.dtype
    assert (np.abs(got - expected) <= error_bound(problem, scale, method)).all()


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("border", ["valid", "half", "full", (2, 0), (0, 3)])
@pytest.mark.parametrize(
    "shape", [(2, 16, 9, 10, 20), (1, 17, 5, 7, 16), (3, 16, 3, 4, 16), (1, 16, 1, 2, 18)]
)
def test_winograd_is_within_the_direct_bound(tile, dtype, border, shape):
    batch, channels, height, width, filters = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((batch, channels, height, width)).astype(dtype)
    w = rng.standard_normal((filters, channels, 3, 3)).astype(dtype)
    for flip in (True, False):
        try:
            problem = normalize_conv(x, w, border, 1, flip, 1, 1, None, "conv2d")
        except ValueError:
            continue  # "valid" with an input smaller than the kernel
        assert _winograd.applies(problem)
        _assert_within_direct_bound(problem, _winograd.conv_winograd(problem, tile))


def test_the_larger_tiles_are_taken_where_the_output_has_room_for_them():
    def problem(size):
        x = np.ones((1, 16, size, size), np.float32)
        return normalize_conv(
            x, np.ones((16, 16, 3, 3), np.float32), "half", 1, True, 1, 1, None, "conv2d"
        )

    assert _winograd.tile_size(problem(_winograd.MIN_OUTPUT_FOR_4X4)) == 4
    assert _winograd.tile_size(problem(_winograd.MIN_OUTPUT_FOR_4X4 - 1)) == 2


@pytest.mark.parametrize("boundary", ["wrap", "symm", "mirror", "nearest"])
def test_the_larger_tiles_follow_the_boundary_rules(boundary):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 16, 13, 10)).astype(np.float32)
    w = rng.standard_normal((17, 16, 3, 3)).astype(np.float32)
    for border in ("half", "full", (3, 4)):
        problem = normalize_conv(x, w, border, 1, True, 1, 1, None, "conv2d", boundary=boundary)
        _assert_within_direct_bound(problem, _winograd.conv_winograd(problem, 4))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_whose_window_lies_in_deep_zero_padding_are_exact_zeros(dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 16, 9, 11)).astype(dtype)
    w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    problem = normalize_conv(x, w, (4, 5), 1, True, 1, 1, None, "conv2d")
    got = _winograd.conv_winograd(problem, 4)
    assert (got[:, :, :2] == 0).all() and (got[:, :, -2:] == 0).all()
    assert (got[:, :, :, :3] == 0).all() and (got[:, :, :, -3:] == 0).all()
    _assert_within_direct_bound(problem, got)


@pytest.mark.parametrize("scale", [1e-1, 1e-2, 1e-4, 1e-9, 0.0])
@pytest.mark.parametrize("cut", [13, 14, 15])
def test_regions_of_small_values_beside_large_ones_stay_within_the_direct_bound(scale, cut):
    # A 4x4 tile mixes all 36 samples of its patch, so an output whose own window is small
    # (or zero) would get the rounding of its large neighbours: those tiles go direct.
    rng = np.random.default_rng(cut)
    x = rng.standard_normal((1, 32, 40, 40)).astype(np.float32)
    x[:, :, :, :cut] *= scale
    x[:, :, cut + 9 :, :] *= scale
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    _assert_within_direct_bound(problem, _winograd.conv_winograd(problem, 4))


def test_spikes_and_rectified_data_stay_within_the_direct_bound():
    rng = np.random.default_rng(13)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    spikes = rng.standard_normal((1, 32, 40, 40)).astype(np.float32) * 1e-3
    spikes[:, :, ::7, ::5] = 1e3
    rectified = np.maximum(rng.standard_normal((1, 32, 40, 40)), 0).astype(np.float32)
    for x in (spikes, rectified):
        problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
        _assert_within_direct_bound(problem, _winograd.conv_winograd(problem, 4))


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("sigma", [1, 2, 3, 5])
def test_any_dynamic_range_stays_within_the_declared_transform_bound(tile, sigma):
    rng = np.random.default_rng(sigma)
    shape = (2, 32, 30, 30)
    x = (rng.standard_normal(shape) * np.exp(sigma * rng.standard_normal(shape))).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    assert NumbaBackend().method(problem) == "fft"
    _assert_within_direct_bound(problem, _winograd.conv_winograd(problem, tile), "fft")


@pytest.mark.parametrize("dominance", [1e2, 1e4, np.inf])
def test_kernels_with_a_dominant_tap_take_the_smaller_tiles(dominance):
    # The 4x4 tiles' filter transform spreads a dominant tap's rounding (measured 1-2x the
    # transform bound); the 2x2 tiles keep it within (0.13 of it).
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 32, 40, 40)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    w[:, :, 2, 2] = 1e4 if dominance == np.inf else w[:, :, 2, 2] * dominance
    if dominance == np.inf:
        w[:, :, :2] = 0  # most taps zero: the median is 0
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    assert _winograd.tile_size(problem) == 4
    assert not _winograd.even_taps(problem.filters, _winograd.MAX_TAP_SPREAD)
    _assert_within_direct_bound(problem, _winograd.conv_winograd(problem), "fft")
    assert _winograd.even_taps(np.ones((2, 2, 3, 3), np.float32), _winograd.MAX_TAP_SPREAD)


def test_the_backend_declares_the_winograd_paths_as_transform_methods():
    rng = np.random.default_rng(14)
    backend = NumbaBackend()
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    x = rng.standard_normal((2, 32, 30, 30)).astype(np.float32)
    assert backend.method(normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")) == "fft"
    strided = normalize_conv(x, w, "half", 2, True, 1, 1, None, "conv2d")
    assert backend.method(strided) == "direct"
    gradient = normalize_conv_grad_input(
        rng.standard_normal((2, 32, 30, 30)).astype(np.float32), w, x.shape, "half"
    )
    assert backend.method(gradient) == "fft"  # it runs as the forward layer


def test_one_image_is_shared_by_every_thread_and_gives_the_same_result():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1, 16, 37, 29)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    convkit.set_num_threads(1)  # the suite's fixture resets it
    alone = _winograd.conv_winograd(problem, 4)
    convkit.set_num_threads(3)  # bands of one image for each thread
    shared = _winograd.conv_winograd(problem, 4)
    np.testing.assert_array_equal(alone, shared)


def test_the_backend_takes_the_path_for_a_layer_and_keeps_nonfinite_values_local():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 32, 24, 24)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    assert (
        NumbaBackend._uses_gemm(problem)
        and _winograd.applies(problem)
        and _winograd.finite(problem)
    )
    _assert_within_direct_bound(problem, convkit.conv2d(x, w, "half", backend="numba"))
    # A NaN would spread over its tile's neighbours: such operands take the exact path.
    x[1, 3, 10, 7] = np.nan
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    assert not _winograd.finite(problem)
    got = convkit.conv2d(x, w, "half", backend="numba")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(direct_conv(problem)))
    assert np.isnan(got).sum() == 32 * 9  # every filter, the 3x3 outputs that read it


def test_other_layers_do_not_take_the_path():
    def problem(x_shape, w_shape, **arguments):
        p = {
            "border_mode": "valid",
            "subsample": 1,
            "filter_dilation": 1,
            "num_groups": 1,
            **arguments,
        }
        return normalize_conv(
            np.ones(x_shape, np.float32),
            np.ones(w_shape, np.float32),
            p["border_mode"],
            p["subsample"],
            True,
            p["filter_dilation"],
            p["num_groups"],
            None,
            "conv2d",
        )

    assert _winograd.applies(problem((1, 16, 8, 8), (16, 16, 3, 3)))
    assert not _winograd.applies(problem((1, 16, 8, 8), (16, 16, 3, 3), subsample=2))
    assert not _winograd.applies(problem((1, 16, 8, 8), (16, 16, 3, 3), filter_dilation=2))
    assert not _winograd.applies(problem((1, 16, 8, 8), (16, 16, 5, 5)))
    assert not _winograd.applies(problem((1, 32, 8, 8), (32, 16, 3, 3), num_groups=2))
    assert not _winograd.applies(problem((1, 8, 8, 8), (16, 8, 3, 3)))
    assert not _winograd.applies(problem((1, 16, 8, 8, 8), (16, 16, 3, 3, 3)))
    complex_problem = normalize_conv(
        np.ones((1, 16, 8, 8), np.complex64),
        np.ones((16, 16, 3, 3), np.complex64),
        "valid",
        1,
        True,
        1,
        1,
        None,
        "conv2d",
    )
    assert not _winograd.applies(complex_problem)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(16, 19),
    filters=st.integers(16, 18),
    height=st.integers(1, 11),
    width=st.integers(1, 11),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dtype=st.sampled_from(["float32", "float64"]),
    flip=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_winograd_property(batch, channels, filters, height, width, pad, dtype, flip, seed):
    if height + 2 * pad[0] < 3 or width + 2 * pad[1] < 3:
        return  # no output
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4, 4, (batch, channels, height, width)).astype(dtype)
    w = rng.uniform(-4, 4, (filters, channels, 3, 3)).astype(dtype)
    problem = normalize_conv(x, w, pad, 1, flip, 1, 1, None, "conv2d")
    _assert_within_direct_bound(problem, _winograd.conv_winograd(problem))


BOUNDS_CHECKED = textwrap.dedent("""\
    import numpy as np
    from convkit.plugin import explicit_boundary, normalize_conv
    from convkit.testing import direct_conv
    from convkit_numba import _winograd
    rng = np.random.default_rng(0)
    for shape, border in [((2, 16, 7, 9), "full"), ((1, 16, 2, 3), (2, 1)), ((3, 16, 8, 8), "valid")]:
        x = rng.standard_normal(shape)
        w = rng.standard_normal((16, 16, 3, 3))
        problem = normalize_conv(x, w, border, 1, True, 1, 1, None, "conv2d")
        _winograd.BAND_BYTES = {2: 1, 4: 1}  # one tile row per band: every band offset
        for tile in (2, 4):
            assert np.allclose(_winograd.conv_winograd(problem, tile), direct_conv(problem))
    x = rng.standard_normal((1, 16, 17, 18))
    x[:, :, :, :7] = 0  # tiles beside the zeros go direct
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d", boundary="symm")
    assert np.allclose(_winograd.conv_winograd(problem, 4), direct_conv(explicit_boundary(problem)))
    w[0, 0, 1, 1] = 1e6  # a dominant tap: the default choice checks every kernel, then 2x2 tiles
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    assert np.allclose(_winograd.conv_winograd(problem), direct_conv(problem), rtol=1e-9, atol=1e-3)
    print("ok")
""")


@pytest.mark.slow
def test_winograd_kernels_under_numba_boundscheck(tmp_path):
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


FORKED = textwrap.dedent("""\
    import multiprocessing, numpy as np, convkit
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 24, 24)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    expected = convkit.conv2d(x, w, "half", backend="numba")  # the worker pool now exists

    def child(queue):
        queue.put(float(np.abs(convkit.conv2d(x, w, "half", backend="numba") - expected).max()))

    if __name__ == "__main__":
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        process = context.Process(target=child, args=(queue,), daemon=True)  # a hung child dies with us
        process.start()
        assert queue.get(timeout=60) == 0.0
        process.join(30)
        print("ok")
""")


def test_a_forked_child_can_use_the_path_its_parent_used(tmp_path):
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"
