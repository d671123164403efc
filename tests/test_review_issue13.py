"""Findings of an adversarial review of the gradients, conv_transpose and the autograd bridges."""

import subprocess
import sys
import textwrap

import pytest

import convkit

CPU_BACKENDS = [
    name
    for name in ("scipy", "numba", "fftw")
    if any(info.name == name and info.available for info in convkit.list_backends())
]


def _run_with_timeout(code, seconds=60):
    """Run ``code`` in a fresh interpreter; a hang fails the test instead of the run."""
    try:
        done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=seconds,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {seconds} s")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_input_gradient_with_a_huge_stride_finishes(backend):
    # The stride is longer than the input: only the phases that a kernel tap lands on
    # have terms, and finding them must not loop over every residue of the stride.
    out = _run_with_timeout(
        f"""
        import numpy as np, convkit
        filters = np.array([[[1.0, 2.0, 3.0]]])
        grad = np.ones((1, 1, 1))
        for result in (
            convkit.conv_grad_input(grad, filters, (1, 1, 10), subsample=10**9, backend={backend!r}),
            convkit.conv_transpose(grad, filters, (1, 1, 10), input_dilation=10**9,
                                   backend={backend!r}),
        ):
            print(result.ravel().tolist())
        """
    )
    expected = str([3.0, 2.0, 1.0] + [0.0] * 7)
    assert out.split("\n")[:2] == [expected, expected]
