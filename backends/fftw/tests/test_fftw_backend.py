"""What the fftw backend promises beyond the matrix: overlap-add, memory budget, plans, threads."""

import math
import threading

import numpy as np
import pytest
import scipy.signal

import convkit

pytest.importorskip("convkit_fftw")
pytest.importorskip("pyfftw")

from convkit.plugin import normalize_conv, normalize_convolve
from convkit_fftw import (
    FftwBackend,
    export_wisdom,
    get_planner_effort,
    import_wisdom,
    set_planner_effort,
)
from convkit_fftw._convolve import layout
from convkit_fftw._plans import borrow


@pytest.fixture(autouse=True)
def _cheap_planning():
    set_planner_effort("estimate")
    yield
    set_planner_effort(None)


def _close(result, expected, dtype):
    scale = np.abs(expected).max()
    tolerance = 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12
    assert result.shape == expected.shape
    assert np.abs(result - expected).max() <= tolerance * scale


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_overlap_add_matches_scipy(rng, dtype, mode):
    signal = rng.standard_normal(6000).astype(dtype)
    kernel = rng.standard_normal(41).astype(dtype)
    if np.dtype(dtype).kind == "c":
        signal = signal + 1j * rng.standard_normal(6000).astype(dtype)
    assert layout(signal.shape, kernel.shape, (0,)).blocks  # the overlap-add path is taken
    expected = scipy.signal.fftconvolve(
        signal.astype(np.complex128), kernel.astype(np.complex128), mode
    )
    result = convkit.convolve_nd(signal, kernel, mode, backend="fftw")
    assert result.dtype == dtype
    _close(result, expected if np.dtype(dtype).kind == "c" else expected.real, dtype)


def test_overlap_add_along_one_axis_with_broadcast_batch(rng):
    signals = rng.standard_normal((3, 1, 5000))
    kernels = rng.standard_normal((1, 4, 30))
    assert list(layout(signals.shape, kernels.shape, (2,)).blocks) == [2]
    for mode in ("full", "same"):
        # The batch axes broadcast explicitly: scipy's own "same" cuts them to in1's (scipy#21876).
        expected = scipy.signal.fftconvolve(
            np.broadcast_to(signals, (3, 4, 5000)),
            np.broadcast_to(kernels, (3, 4, 30)),
            mode,
            axes=2,
        )
        _close(
            convkit.convolve_nd(signals, kernels, mode, axes=2, backend="fftw"), expected, "float64"
        )


def test_operands_in_either_order_and_larger_kernel(rng):
    small, large = rng.standard_normal((7, 9)), rng.standard_normal((40, 33))
    for mode in ("full", "same"):
        _close(
            convkit.convolve_nd(small, large, mode, backend="fftw"),
            scipy.signal.fftconvolve(small, large, mode),
            "float64",
        )


def test_nonfinite_values_stay_local_on_the_overlap_add_path():
    signal = np.ones(4000)
    signal[1000] = np.nan
    signal[3000] = np.inf
    result = convkit.convolve_nd(signal, np.ones(21), "same", backend="fftw")
    expected = convkit.convolve_nd(signal, np.ones(21), "same", backend="scipy")
    assert np.array_equal(np.isnan(result), np.isnan(expected))
    assert np.array_equal(np.isinf(result), np.isinf(expected))
    assert np.isnan(result).sum() == 21 and np.isinf(result).sum() == 21
    finite = np.isfinite(expected)
    assert np.allclose(result[finite], expected[finite])


def test_conv_nonfinite_filter_never_meets_padding():
    x = np.ones((1, 1, 6, 6))
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 0, 0] = np.inf
    result = convkit.conv2d(x, w, border_mode="full", backend="fftw")
    expected = convkit.conv2d(x, w, border_mode="full", backend="scipy")
    assert np.array_equal(np.isinf(result), np.isinf(expected))
    assert np.isfinite(result).sum() == np.isfinite(expected).sum() > 0


def test_conv_is_split_by_batch_under_a_small_budget(rng):
    x = rng.standard_normal((6, 4, 40, 40)).astype(np.float32)
    w = rng.standard_normal((8, 4, 5, 5)).astype(np.float32)
    expected = convkit.conv2d(x, w, border_mode="half", backend="fftw")
    problem = normalize_conv(x, w, "half", 1, True, 1, 1, None, "conv2d")
    whole = FftwBackend().working_set_bytes(problem)
    convkit.set_memory_limit(whole * 2 // 3)  # the filters' spectra take a fixed share
    assert FftwBackend().working_set_bytes(problem) <= whole * 2 // 3
    _close(convkit.conv2d(x, w, border_mode="half", backend="fftw"), expected, "float32")


def test_convolve_nd_is_split_along_a_batch_axis_under_a_small_budget(rng):
    signals = rng.standard_normal((16, 2000))
    kernel = rng.standard_normal((1, 300))
    expected = scipy.signal.fftconvolve(signals, kernel, "same", axes=1)
    problem = normalize_convolve(signals, kernel, "same", 1)
    whole = FftwBackend().working_set_bytes(problem)
    convkit.set_memory_limit(whole // 4)
    assert FftwBackend().working_set_bytes(problem) <= whole // 4
    _close(
        convkit.convolve_nd(signals, kernel, "same", axes=1, backend="fftw"), expected, "float64"
    )


def test_a_problem_that_cannot_be_split_enough_is_refused():
    # Over the operands and the output (the core's own check passes), under any split.
    convkit.set_memory_limit(1_000_000)
    with pytest.raises(convkit.WorkingSetTooLargeError, match="fftw"):
        convkit.convolve_nd(np.ones((300, 300)), np.ones((40, 40)), backend="fftw")


def test_plans_follow_the_convkit_thread_count():
    shape = (1024, 1024)
    convkit.set_num_threads(1)
    with borrow("r2c", shape, (0, 1), np.dtype(np.float64), convkit.get_num_threads()) as plan:
        assert plan.threads == 1
    convkit.set_num_threads(2)
    with borrow("r2c", shape, (0, 1), np.dtype(np.float64), convkit.get_num_threads()) as plan:
        assert plan.threads == 2
    with borrow("r2c", (256, 256), (0, 1), np.dtype(np.float64), 2) as plan:
        assert plan.threads == 1  # small transforms stay on one thread
    with borrow("r2c", (64, 128, 128), (1, 2), np.dtype(np.float64), 2) as plan:
        assert plan.threads == 1  # and so does a batch of them, however large the batch


def test_concurrent_calls_from_threads_are_correct(rng):
    x = rng.standard_normal((2, 3, 33, 35))
    w = rng.standard_normal((4, 3, 7, 5))
    signal = rng.standard_normal((4, 3000))
    expected = (
        convkit.conv2d(x, w, "half", backend="scipy"),
        convkit.convolve_nd(signal, np.ones((1, 31)), "same", axes=1, backend="scipy"),
    )
    errors = []

    def work():
        for _ in range(10):
            got = (
                convkit.conv2d(x, w, "half", backend="fftw"),
                convkit.convolve_nd(signal, np.ones((1, 31)), "same", axes=1, backend="fftw"),
            )
            errors.extend(
                float(np.abs(g - e).max())
                for g, e in zip(got, expected)
                if not np.allclose(g, e, atol=1e-9)
            )

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_planner_effort_setting_and_environment(monkeypatch):
    set_planner_effort(None)
    monkeypatch.delenv("CONVKIT_FFTW_EFFORT", raising=False)
    assert get_planner_effort() == "FFTW_MEASURE"
    monkeypatch.setenv("CONVKIT_FFTW_EFFORT", "patient")
    assert get_planner_effort() == "FFTW_PATIENT"
    set_planner_effort("FFTW_ESTIMATE")
    assert get_planner_effort() == "FFTW_ESTIMATE"
    with pytest.raises(ValueError, match="estimate, measure, patient, exhaustive"):
        set_planner_effort("fast")
    monkeypatch.setenv("CONVKIT_FFTW_EFFORT", "quick")
    set_planner_effort(None)
    with pytest.raises(ValueError, match="CONVKIT_FFTW_EFFORT"):
        get_planner_effort()


def test_wisdom_round_trip(tmp_path):
    set_planner_effort("measure")
    convkit.convolve_nd(np.ones(100), np.ones(7), backend="fftw")
    path = tmp_path / "wisdom.bin"
    export_wisdom(path)
    assert path.stat().st_size > 0
    assert import_wisdom(path)[0] is True
    (tmp_path / "bad.bin").write_bytes(b"xx")
    with pytest.raises(ValueError, match="not a convkit-fftw wisdom file"):
        import_wisdom(tmp_path / "bad.bin")


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((2, 2, 9, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    x_before, w_before = x.copy(), w.copy()
    convkit.conv2d(x, w, border_mode="full", backend="fftw")
    convkit.convolve_nd(x, w, backend="fftw")
    assert np.array_equal(x, x_before) and np.array_equal(w, w_before)


def test_auto_picks_fftw_for_large_kernels_only():
    long_signal = convkit.explain("convolve_nd", np.empty(1_000_000), np.empty(10_000), mode="same")
    big_kernel = convkit.explain(
        "conv2d", np.empty((1, 1, 1024, 1024), np.float32), np.empty((1, 1, 31, 31), np.float32)
    )
    small_kernel = convkit.explain(
        "conv2d",
        np.empty((8, 64, 56, 56), np.float32),
        np.empty((64, 64, 3, 3), np.float32),
        border_mode="half",
    )
    assert long_signal.backend == "fftw" and big_kernel.backend == "fftw"
    assert small_kernel.backend != "fftw"
    assert {long_signal.rule, big_kernel.rule, small_kernel.rule} == {"auto"}


def test_a_shape_gets_measured_plans_from_its_third_use():
    from convkit_fftw._plans import MEASURE_FROM_USE, clear_plans

    set_planner_effort("measure")
    clear_plans()
    shape = (96, 80)
    efforts = []
    for _ in range(MEASURE_FROM_USE + 1):
        with borrow("r2c", shape, (0, 1), np.dtype(np.float64), 1) as plan:
            efforts.append(plan.fftw.flags)
    assert all("FFTW_ESTIMATE" in flags for flags in efforts[: MEASURE_FROM_USE - 1])
    assert all("FFTW_MEASURE" in flags for flags in efforts[MEASURE_FROM_USE - 1 :])


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(
    ("shape1", "shape2", "axes"),
    [
        ((30000,), (301,), None),  # one long signal: overlap-save segments
        ((301,), (30000,), None),  # the long operand second
        ((400, 300), (31, 17), None),  # 2-D: segments along the longest output axis
        ((3, 5000), (1, 99), 1),  # a batch axis first, then segments
    ],
)
def test_problems_over_the_budget_are_split_into_pieces(rng, mode, shape1, shape2, axes):
    from convkit_fftw._pieces import pieces

    first, second = rng.standard_normal(shape1), rng.standard_normal(shape2)
    problem = normalize_convolve(first, second, mode, axes)
    whole = FftwBackend().working_set_bytes(problem)
    convkit.set_memory_limit(whole // 3)
    assert FftwBackend().working_set_bytes(problem) <= whole // 3
    budget = whole // 3 - (first.nbytes + second.nbytes + math.prod(problem.output_shape) * 8)
    assert (
        len(
            list(
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
        )
        > 1
    )
    expected = scipy.signal.fftconvolve(first, second, mode, axes=axes)
    _close(convkit.convolve_nd(first, second, mode, axes=axes, backend="fftw"), expected, "float64")


def test_nonfinite_values_stay_local_across_pieces():
    signal = np.ones(20000)
    signal[[10, 9999, 19990]] = [np.nan, np.inf, -np.inf]
    problem = normalize_convolve(signal, np.ones(101), "same", None)
    convkit.set_memory_limit(FftwBackend().working_set_bytes(problem) // 3)
    result = convkit.convolve_nd(signal, np.ones(101), "same", backend="fftw")
    convkit.set_memory_limit(None)
    expected = convkit.convolve_nd(signal, np.ones(101), "same", backend="scipy")
    assert np.array_equal(np.isnan(result), np.isnan(expected))
    assert np.array_equal(result[np.isinf(expected)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    assert np.allclose(result[finite], expected[finite])
