"""Array-likes of every layout work, and the caller's arrays are never modified."""

import numpy as np
import pytest

import convkit


def _variants(array):
    yield "list", array.tolist()
    readonly = array.copy()
    readonly.flags.writeable = False
    yield "read-only", readonly
    yield "fortran", np.asfortranarray(array)
    reversed_copy = array[(slice(None, None, -1),) * array.ndim].copy()
    yield "negative-stride", reversed_copy[(slice(None, None, -1),) * array.ndim]
    yield "big-endian", array.astype(array.dtype.newbyteorder(">"))
    strided = np.zeros(tuple(2 * n for n in array.shape), dtype=array.dtype)
    strided[(slice(None, None, 2),) * array.ndim] = array
    yield "non-contiguous", strided[(slice(None, None, 2),) * array.ndim]


def test_convolve_nd_array_likes(rng):
    in1, in2 = rng.standard_normal((6, 7)), rng.standard_normal((3, 2))
    expected = convkit.convolve_nd(in1, in2, "same")
    for (name1, v1), (name2, v2) in zip(_variants(in1), _variants(in2)):
        np.testing.assert_allclose(
            convkit.convolve_nd(v1, v2, "same"), expected, atol=1e-12, err_msg=name1
        )


def test_conv_array_likes(rng):
    x, w = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((3, 2, 2, 3))
    expected = convkit.conv2d(x, w, "half", subsample=2)
    for (name, vx), (_, vw) in zip(_variants(x), _variants(w)):
        np.testing.assert_allclose(
            convkit.conv2d(vx, vw, "half", subsample=2), expected, atol=1e-12, err_msg=name
        )


def test_inputs_are_never_modified(rng):
    x = rng.standard_normal((2, 4, 7, 7))
    x[0, 0, 1, 1] = np.nan
    w = rng.standard_normal((4, 2, 3, 3))
    w[0, 0, 0, 0] = np.inf
    before_x, before_w = x.copy(), w.copy()
    convkit.conv2d(x, w, "full", num_groups=2)
    convkit.conv2d(x, w, "same", filter_flip=False, num_groups=2)
    convkit.convolve_nd(x, w, "same")
    convkit.convolve_nd(x, w[:1, :1], "valid", axes=(2, 3))
    np.testing.assert_array_equal(x, before_x)
    np.testing.assert_array_equal(w, before_w)


def test_result_is_a_fresh_writeable_array(rng):
    x = rng.standard_normal((1, 1, 4, 4))
    result = convkit.conv2d(x, np.ones((1, 1, 1, 1)))
    assert result.flags.writeable and not np.shares_memory(result, x)


@pytest.mark.parametrize("function", ["convolve_nd", "conv"])
def test_backend_receives_read_only_operands(function):
    from convkit.plugin import Backend, Capabilities

    seen = []

    class Spy(Backend):
        name = "spy-readonly"
        capabilities = Capabilities()

        def convolve_nd(self, problem):
            seen.append(problem)
            return np.zeros(problem.output_shape, problem.dtype)

        def conv(self, problem):
            seen.append(problem)
            return np.zeros(problem.output_shape, problem.dtype)

    spy = Spy()
    if function == "conv":
        convkit.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), backend=spy)
    else:
        convkit.convolve_nd(np.ones(5), np.ones(2), backend=spy)
    for operand in seen[0].operands:
        assert operand.flags.c_contiguous and not operand.flags.writeable
        with pytest.raises(ValueError):
            operand[...] = 0


def test_numpy_integers_count_as_ints_and_arrays_as_sequences():
    x, w = np.arange(36.0).reshape(1, 2, 3, 6), np.ones((2, 1, 2, 2))
    expected = convkit.conv2d(
        x, w, [(1, 2), (0, 1)], subsample=(1, 2), filter_dilation=1, num_groups=2
    )
    for kwargs in (
        {
            "border_mode": np.array([[1, 2], [0, 1]]),
            "subsample": np.array([1, 2]),
            "num_groups": np.int64(2),
        },
        {
            "border_mode": [np.array([1, 2]), (np.int8(0), np.uint64(1))],
            "subsample": (np.int32(1), 2),
            "filter_dilation": np.uint8(1),
            "num_groups": np.int16(2),
        },
    ):
        np.testing.assert_array_equal(convkit.conv2d(x, w, **kwargs), expected)
    np.testing.assert_array_equal(
        convkit.conv2d(x, w, np.array([1, 1]), num_groups=2),
        convkit.conv2d(x, w, [1, 1], num_groups=2),
    )
    np.testing.assert_array_equal(
        convkit.conv2d(x, w, np.int32(1), num_groups=2), convkit.conv2d(x, w, 1, num_groups=2)
    )
    for kwargs in (
        {"subsample": np.True_},
        {"border_mode": np.array([True, False])},
        {"num_groups": np.True_},
        {"filter_dilation": (True, 1)},
    ):
        with pytest.raises(TypeError, match="ints|positive int"):
            convkit.conv2d(x, w[:, :1].repeat(2, axis=1)[:2], **kwargs)


# A broadcast (zero-stride) input whose contiguous copy, or an output, is far
# over any budget: refused by convkit's own error before anything is copied.
_HUGE_BROADCASTS = """
import time
import numpy as np
import convkit

start = time.perf_counter()
cases = [
    lambda: convkit.conv2d(np.broadcast_to(1.0, (1, 1, 10**6, 10**6)), np.ones((1, 1, 3, 3))),
    lambda: convkit.conv2d(np.broadcast_to(1.0, (1, 0, 10**6, 10**6)), np.ones((1, 0, 3, 3))),
    lambda: convkit.convolve_nd(np.broadcast_to(1.0, (10**6, 10**6)), np.ones((3, 3))),
    lambda: convkit.conv1d(np.broadcast_to(np.float32(1), (4, 8, 10**11)), np.ones((8, 8, 3))),
]
for case in cases:
    try:
        case()
    except convkit.WorkingSetTooLargeError as error:
        assert "over the limit" in str(error), error
    else:
        raise AssertionError("not refused")
print(f"refused in {time.perf_counter() - start:.3f} s")
"""


def test_huge_broadcast_inputs_are_refused_by_convkit_at_once():
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _HUGE_BROADCASTS],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, CONVKIT_MEMORY_LIMIT="1G"),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "refused in" in done.stdout


@pytest.mark.parametrize("function", ["conv2d", "convolve_nd"])
def test_budget_is_checked_before_copying_a_broadcast_input(function):
    import tracemalloc

    convkit.set_memory_limit(64 * 2**20)
    # 128 MiB each once copied; the output is a single value.
    data = np.broadcast_to(1.0, (1, 1, 4096, 4096))
    filters = np.broadcast_to(1.0, (1, 1, 4096, 4096))
    call = getattr(convkit, function)
    mode = "valid"
    tracemalloc.start()
    try:
        with pytest.raises(
            convkit.WorkingSetTooLargeError, match="copies of the inputs 256.00 MiB"
        ):
            call(data, filters, mode, backend="scipy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated before the refusal"
