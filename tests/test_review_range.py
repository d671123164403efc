"""Complex operands whose modulus overflows although both parts are finite."""

import numpy as np
import pytest

import convkit

BACKENDS = [
    name
    for name in ("scipy", "numba", "fftw")
    if any(b.name == name and b.available for b in convkit.list_backends())
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "dtype, part", [(np.complex128, 1.5e308), (np.complex64, np.float32(3e38))]
)
def test_a_small_complex_operand_with_an_overflowing_modulus_is_scaled(backend, dtype, part):
    # |part + part*j| is inf, yet every output, sum(in2) * part at most, is finite.
    in1 = np.full(100, part + part * 1j, dtype=dtype)
    in2 = np.full(4, 0.2, dtype=dtype)
    expected = np.convolve(in1.astype(np.clongdouble), in2.astype(np.clongdouble))
    with np.errstate(all="ignore"):
        result = convkit.convolve_nd(in1, in2, backend=backend)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, expected.astype(dtype), rtol=1e-4)
