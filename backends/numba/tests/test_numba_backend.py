"""What the numba backend promises beyond the matrix: threads, concurrency, bounds checks."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import convkit

pytest.importorskip("convkit_numba")

CONCURRENT = textwrap.dedent("""\
    import threading, numpy as np, convkit
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 24, 24)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    big_w = rng.standard_normal((64, 8, 3, 3)).astype(np.float32)
    wide = rng.standard_normal((2, 16, 24, 24)).astype(np.float32)  # the Winograd path
    wide_w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    broad = rng.standard_normal((2, 4, 50, 50)).astype(np.float32)  # im2col + GEMM per worker
    broad_w = rng.standard_normal((16, 4, 5, 5)).astype(np.float32)
    signal = rng.standard_normal((8, 4000))
    expected = [convkit.conv2d(x, w, "half", backend="scipy"),
                convkit.conv2d(x, big_w, "half", backend="scipy"),
                convkit.convolve_nd(signal, np.ones((1, 31)), "same", axes=-1, backend="scipy"),
                convkit.conv2d(wide, wide_w, "half", backend="scipy"),
                convkit.conv2d(broad, broad_w, backend="scipy")]
    errors = []

    def work():
        for _ in range(15):
            got = [convkit.conv2d(x, w, "half", backend="numba"),
                   convkit.conv2d(x, big_w, "half", backend="numba"),
                   convkit.convolve_nd(signal, np.ones((1, 31)), "same", axes=-1, backend="numba"),
                   convkit.conv2d(wide, wide_w, "half", backend="numba"),
                   convkit.conv2d(broad, broad_w, backend="numba")]
            for g, e in zip(got, expected):
                if not np.allclose(g, e, rtol=1e-4, atol=1e-3):
                    errors.append(float(np.abs(g - e).max()))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(len(errors))
""")


def _python(script, **environment):
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **environment},
        timeout=900,
    )


@pytest.mark.slow
def test_concurrent_calls_from_threads():
    done = _python(CONCURRENT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0"], done.stdout


@pytest.mark.slow
def test_concurrent_calls_need_no_thread_safe_numba_layer():
    # Numba's workqueue layer aborts the process on concurrent parallel launches; the
    # backend's kernels are serial and share its own thread pool, so the layer does not matter.
    done = _python(CONCURRENT, NUMBA_THREADING_LAYER="workqueue")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0"], done.stdout


def test_thread_count_follows_convkit_setting():
    import threading

    from threadpoolctl import threadpool_info

    from convkit_numba._threads import blas_limits, run_parallel

    ranges = []

    def record(begin, end):
        ranges.append((threading.get_ident(), begin, end))

    convkit.set_num_threads(1)
    run_parallel(record, tasks=10)
    assert ranges == [(threading.get_ident(), 0, 10)]
    assert next(b for b in convkit.list_backends() if b.name == "numba").threads == 1
    with blas_limits(1):  # the BLAS that NumPy's matmul calls (others may load later)
        numpy_blas = [
            pool
            for pool in threadpool_info()
            if pool["user_api"] == "blas" and "numpy" in pool["filepath"]
        ]
        assert numpy_blas and all(pool["num_threads"] == 1 for pool in numpy_blas)
    convkit.set_num_threads(3)
    ranges.clear()
    run_parallel(record, tasks=120)  # 3 threads take 4 pieces each, in turn
    assert sorted((begin, end) for _, begin, end in ranges) == [
        (k, k + 10) for k in range(0, 120, 10)
    ]
    ranges.clear()
    run_parallel(record, tasks=5)  # at most one piece per task
    assert sorted((begin, end) for _, begin, end in ranges) == [(k, k + 1) for k in range(5)]
    ranges.clear()
    run_parallel(record, tasks=10, work=100)  # too small to wake the workers
    assert ranges == [(threading.get_ident(), 0, 10)]


def test_gemm_path_keeps_nonfinite_filters_local():
    from convkit.plugin import normalize_conv
    from convkit.testing import direct_conv
    from convkit_numba._backend import NumbaBackend

    x = np.random.default_rng(1).standard_normal((2, 32, 20, 20))
    w = np.random.default_rng(2).standard_normal((32, 32, 3, 3))
    w[3, 4, 0, 0] = np.inf
    problem = normalize_conv(x, w, "full", 1, True, 1, 1, None, "conv2d")
    assert NumbaBackend._uses_gemm(problem)
    result = convkit.conv2d(x, w, "full", backend="numba")
    expected = direct_conv(problem)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(result), np.isinf(expected))
    assert np.isfinite(result[:, :3]).all()


@pytest.mark.slow
def test_matrix_under_numba_boundscheck(tmp_path):
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "convkit", "check", "numba"],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " 0 failed" in done.stdout.splitlines()[-1]


def test_auto_picks_fft_for_large_kernels_and_numba_for_small():
    large = convkit.explain("convolve_nd", np.empty(1_000_000), np.empty(10_000), mode="same")
    small = convkit.explain(
        "convolve_nd", np.empty((4096, 4096), np.float32), np.empty((5, 5), np.float32), mode="same"
    )
    layer = convkit.explain(
        "conv2d",
        np.empty((8, 64, 56, 56), np.float32),
        np.empty((64, 64, 3, 3), np.float32),
        border_mode="half",
    )
    installed = {info.name for info in convkit.list_backends() if info.available}
    assert large.backend == ("fftw" if "fftw" in installed else "scipy")
    # (256, 16384) * (1, 257) is a tie between numba and fftw here (bench/NOTES.md): not asserted.
    assert small.backend == "numba" and layer.backend == "numba"
    assert {large.rule, small.rule, layer.rule} == {"auto"}


WIDE_IMAGES = textwrap.dedent("""\
    import numpy as np
    from convkit.plugin import normalize_conv
    from convkit.testing import direct_conv
    from convkit_numba._backend import PER_IMAGE_GEMM_POSITIONS, NumbaBackend
    rng = np.random.default_rng(4)
    # im2col + GEMM per image on each worker (wide outputs, not Winograd-shaped)
    for x_shape, w_shape, border, stride, dilation in [
            ((2, 3, 96, 96), (8, 3, 5, 5), "valid", 1, 1),
            ((3, 4, 100, 100), (32, 4, 3, 3), (1, 2), 2, 2),
            ((2, 2, 70, 80), (6, 2, 7, 7), "full", 1, (1, 2))]:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        problem = normalize_conv(x, w, border, stride, True, dilation, 1, None, "conv2d")
        assert NumbaBackend._uses_gemm(problem)
        assert np.prod(problem.output_shape[2:]) >= PER_IMAGE_GEMM_POSITIONS
        got = NumbaBackend().conv(problem)
        expected = direct_conv(problem)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), x_shape
    print("ok")
""")


@pytest.mark.slow
def test_wide_images_run_im2col_and_gemm_per_worker(tmp_path):
    """Also under NUMBA_BOUNDSCHECK: the serial im2col twin is compiled and checked there."""
    for environment in ({}, {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}):
        done = subprocess.run(
            [sys.executable, "-c", WIDE_IMAGES],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env={**os.environ, **environment},
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == "ok"


COMPILED = textwrap.dedent("""\
    import sys, numpy as np, convkit
    from convkit_numba import _kernels, _winograd
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    if sys.argv[1] == "strided":
        convkit.conv2d(x, w, border_mode="half", subsample=2, backend="numba")
    elif sys.argv[1] == "gemm":
        convkit.conv2d(x, w, border_mode="half", backend="numba")
    elif sys.argv[1] == "small":
        convkit.conv2d(x[:1], w, border_mode="half", backend="numba")
    else:
        convkit.convolve_nd(rng.standard_normal((256, 256)), np.full((5, 5), 1 / 25), mode="same", backend="numba")
    compiled = {name: len(function.signatures) for module in (_kernels, _winograd)
                for name, function in sorted(vars(module).items()) if getattr(function, "signatures", None)}
    print(" ".join(f"{name}={count}" for name, count in compiled.items()))
""")


@pytest.mark.slow
def test_a_first_call_compiles_only_its_own_path_once(tmp_path):
    # Each compiled function costs about a second on a first call with an empty cache: a call
    # compiles the kernel of its path and what it calls, each for one signature.
    expected = {
        "strided": "conv_direct_strided=1",
        "gemm": "im2col_phases=1 split_phases=1",
        "small": "_apply_taps=1 conv_padded_planes=1",
        "convolve_nd": "_apply_taps=1 convolve_rows=1",
    }
    for path, compiled in expected.items():
        done = subprocess.run(
            [sys.executable, "-c", COMPILED, path],
            capture_output=True,
            text=True,
            env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / path)},
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == compiled, path


AFTER_WARMUP = """\
import numpy as np, convkit
from convkit_numba import _kernels, _winograd
x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((16, 3, 3, 3)).astype(np.float32)
convkit.conv2d(x, w, border_mode="half", subsample=2, backend="numba")
convkit.conv2d(x, w, border_mode="half", backend="numba")
convkit.convolve_nd(x[0, 0], w[0, 0], mode="same", backend="numba")
layer = np.random.default_rng(2).standard_normal((2, 16, 40, 40)).astype(np.float32)
filters = np.random.default_rng(3).standard_normal((16, 16, 3, 3)).astype(np.float32)
layer[:, :, :, :17] = 0  # Winograd's 4x4 tiles, some of them computed directly
convkit.conv2d(layer, filters, border_mode="half", backend="numba")
misses = {name: dict(function.stats.cache_misses) for module in (_kernels, _winograd)
          for name, function in vars(module).items() if hasattr(function, "stats")}
print({name: miss for name, miss in misses.items() if miss})
"""


@pytest.mark.slow
def test_numba_warmup_fills_the_cache_that_later_processes_load(tmp_path):
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "convkit", "warmup", "--backend", "numba", "--dtype", "float32"],
        capture_output=True,
        text=True,
        timeout=900,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    later = subprocess.run(
        [sys.executable, "-c", AFTER_WARMUP],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
    assert later.returncode == 0, later.stderr[-3000:]
    assert later.stdout.strip() == "{}", later.stdout  # nothing compiled: all loaded from the cache


def test_gemm_path_gives_nan_from_opposite_infinities_without_a_warning():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 32, 22, 22))
    w = np.abs(rng.standard_normal((32, 32, 3, 3)))
    x[0, 0, 5, 5], x[0, 0, 5, 6] = np.inf, -np.inf  # an output that meets both sums inf - inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = convkit.conv2d(x, w, backend="numba")
    expected = convkit.conv2d(x, w, backend="scipy")
    assert np.isnan(result[0, :, 4, 4]).all()
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(result), np.isinf(expected))
