"""The fftw backend never hangs: in forked children, beside busy processes, on problems over the budget.

Whatever could hang runs in a subprocess under a timeout, so that a hang fails
the test instead of stopping the run.
"""

import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import scipy.signal

import convkit

pytest.importorskip("convkit_fftw")
pytest.importorskip("pyfftw")

from convkit.plugin import normalize_convolve
from convkit_fftw import FftwBackend
from convkit_fftw._pieces import peak_bytes, pieces

# The parent's transform (1024^2 "same" by 5^2: 1029^2 points) gets two FFTW threads, so that
# OpenMP has started its workers before the fork.
PARENT_USES_THREADS = """
import os, sys
import numpy as np
import scipy.signal
import convkit
from convkit_fftw._plans import plan_threads

convkit.set_num_threads(2)
assert plan_threads((1029, 1029), (0, 1), 2) == 2
image = np.random.default_rng(0).standard_normal((1024, 1024))
kernel = np.random.default_rng(1).standard_normal((5, 5))
expected = scipy.signal.fftconvolve(image, kernel, "same")
assert np.allclose(convkit.convolve_nd(image, kernel, "same", backend="fftw"), expected)
"""

FORK_CHILD = (
    PARENT_USES_THREADS
    + """
pid = os.fork()
if pid == 0:
    results = [convkit.convolve_nd(image, kernel, "same", backend="fftw") for _ in range(3)]
    os._exit(0 if all(np.allclose(result, expected) for result in results) else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
)

FORK_POOL = (
    PARENT_USES_THREADS
    + """
import multiprocessing

def error(seed):
    signal = np.random.default_rng(seed).standard_normal((1024, 1024))
    result = convkit.convolve_nd(signal, kernel, "same", backend="fftw")
    return float(np.abs(result - scipy.signal.fftconvolve(signal, kernel, "same")).max())

with multiprocessing.get_context("fork").Pool(2) as pool:
    errors = pool.map_async(error, range(4)).get(timeout=100)
assert max(errors) < 1e-9, errors
"""
)

# The README's Quick start on the fftw backend, from a cold process through measured plans.
QUICK_START = """
import numpy as np
import convkit

x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((16, 3, 3, 3)).astype(np.float32)
image = np.random.default_rng(2).standard_normal((256, 256))
kernel = np.full((5, 5), 1 / 25)
expected = (convkit.conv2d(x, w, border_mode="half", subsample=2, backend="scipy"),
            convkit.convolve_nd(image, kernel, mode="same", backend="scipy"))
for _ in range(5):  # the third call of a shape builds measured plans
    y = convkit.conv2d(x, w, border_mode="half", subsample=2, backend="fftw")
    blurred = convkit.convolve_nd(image, kernel, mode="same", backend="fftw")
    assert np.allclose(y, expected[0], atol=1e-4) and np.allclose(blurred, expected[1])
"""

SPIN = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end:\n    pass\n"


def _run(script: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {timeout} s (hung)")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_fftw_after_the_parent_used_threads():
    done = _run(FORK_CHILD, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_pool_runs_fftw_after_the_parent_used_threads():
    done = _run(FORK_POOL, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


OPENMP_SETTINGS = """
import os
import numpy as np
import convkit

convkit.convolve_nd(np.ones(10), np.ones(3), backend="fftw")
assert os.environ.get("OMP_WAIT_POLICY") == {policy!r}, "the environment is left as it was"
"""


@pytest.mark.parametrize("policy", [None, "ACTIVE"])
def test_fftw_threads_wait_passively_unless_the_user_chose(monkeypatch, policy):
    # GNU OpenMP prints its settings when it loads, with OMP_DISPLAY_ENV.
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    if policy is not None:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    monkeypatch.setenv("OMP_DISPLAY_ENV", "VERBOSE")
    done = _run(OPENMP_SETTINGS.format(policy=policy), timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    if "GOMP_SPINCOUNT" not in done.stderr:
        pytest.skip("pyFFTW does not run on GNU OpenMP here")
    if policy is None:
        assert (
            "OMP_WAIT_POLICY = 'PASSIVE'" in done.stderr and "GOMP_SPINCOUNT = '0'" in done.stderr
        )
    else:
        assert f"OMP_WAIT_POLICY = '{policy}'" in done.stderr


@pytest.mark.slow
def test_quick_start_completes_correctly_beside_busy_processes():
    busy = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)]
    try:
        done = _run(QUICK_START, timeout=60)
    finally:
        for process in busy:
            process.terminate()
        for process in busy:
            process.wait()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


REFUSALS = """
import time
import numpy as np
import convkit

def refused_within(seconds, in1, in2):
    start = time.perf_counter()
    try:
        convkit.convolve_nd(in1, in2, backend="fftw")
    except convkit.WorkingSetTooLargeError:
        assert time.perf_counter() - start < seconds, time.perf_counter() - start
    else:
        raise AssertionError("not refused")

refused_within(10, np.ones((10**5, 1)), np.ones((1, 10**5)))
convkit.set_memory_limit(10**6)
refused_within(10, np.ones((1000, 1)), np.ones((1, 1000)))
"""


def test_problems_that_no_split_fits_are_refused_at_once():
    done = _run(REFUSALS, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _budget(problem, limit):
    """What the backend has for its pieces under ``limit``: the limit less operands and result."""
    return (
        limit
        - sum(operand.nbytes for operand in problem.operands)
        - math.prod(problem.output_shape) * problem.dtype.itemsize
    )


@pytest.mark.parametrize(
    ("shape1", "shape2", "axes", "mode"),
    [
        ((1500, 1), (1, 1500), None, "full"),  # an outer product: both convolved axes are cut
        ((2, 1, 700), (1, 3, 45), (2,), "same"),  # two batch axes, each broadcast by one operand
        ((900, 40), (7, 40), None, "valid"),  # a region of the full result
        ((40, 50, 30), (5, 3, 4), None, "same"),  # 3-D
    ],
)
def test_split_pieces_match_scipy_and_fit_the_budget(rng, shape1, shape2, axes, mode):
    first, second = rng.standard_normal(shape1), rng.standard_normal(shape2)
    problem = normalize_convolve(first, second, mode, axes)
    whole = FftwBackend().working_set_bytes(problem)
    limit = whole // 5
    budget = _budget(problem, limit)
    start = time.perf_counter()
    peak = peak_bytes(
        problem.in1.shape,
        problem.in2.shape,
        problem.axes,
        problem.output_start,
        problem.output_shape,
        problem.dtype,
        budget,
    )
    assert time.perf_counter() - start < 1.0  # a bounded search, not a walk over the pieces
    parts = list(
        pieces(
            problem.in1.shape,
            problem.in2.shape,
            problem.axes,
            problem.output_start,
            problem.output_shape,
            problem.dtype,
            budget,
        )
    )
    assert len(parts) > 1 and peak <= budget
    # The pieces tile the output exactly once.
    covered = np.zeros(problem.output_shape, dtype=int)
    for part in parts:
        covered[tuple(slice(o, o + n) for o, n in zip(part.target_offset, part.output_shape))] += 1
    assert (covered == 1).all()
    convkit.set_memory_limit(limit)
    result = convkit.convolve_nd(first, second, mode, axes=axes, backend="fftw")
    # The batch axes broadcast explicitly: scipy's own "same" cuts them to in1's (scipy#21876).
    batch = [
        max(a, b) if axes is not None and axis not in axes else None
        for axis, (a, b) in enumerate(zip(shape1, shape2))
    ]
    explicit = [
        np.broadcast_to(
            array, [n if n is not None else size for n, size in zip(batch, array.shape)]
        )
        for array in (first, second)
    ]
    expected = scipy.signal.fftconvolve(*explicit, mode, axes=axes)
    assert result.shape == expected.shape
    assert np.abs(result - expected).max() <= 1e-12 * np.abs(expected).max()


def test_the_plan_pool_evicts_after_a_key_lent_out_its_only_plan():
    # A key whose only idle plan was lent out must not stay behind as an empty list: the
    # eviction of a later give_back pops from the oldest key's list (it raised IndexError,
    # which two threads of Dask's threaded scheduler hit through the shared pool).
    from convkit_fftw._plans import _Pool

    class FakePlan:
        def __init__(self, nbytes):
            self.nbytes = nbytes

    pool = _Pool(100)
    pool.give_back("A", FakePlan(60))
    lent = pool.take("A")
    assert lent.nbytes == 60
    pool.give_back("B", FakePlan(120))  # over capacity: evicts, the oldest key first
    pool.give_back("C", FakePlan(40))
    assert pool.take("C").nbytes == 40
