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
        np.testing.assert_allclose(convkit.convolve_nd(v1, v2, "same"), expected, atol=1e-12, err_msg=name1)


def test_conv_array_likes(rng):
    x, w = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((3, 2, 2, 3))
    expected = convkit.conv2d(x, w, "half", subsample=2)
    for (name, vx), (_, vw) in zip(_variants(x), _variants(w)):
        np.testing.assert_allclose(convkit.conv2d(vx, vw, "half", subsample=2), expected, atol=1e-12, err_msg=name)


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
