"""The cuda backend: honest availability, and the matrix on Numba's CUDA simulator.

A real GPU is not needed: CI runs the small conformance matrix under the simulator
(``NUMBA_ENABLE_CUDASIM=1``), where the backend is available but marked simulated.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("convkit_cuda")

SIMULATOR = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
NO_SIMULATOR = {key: value for key, value in os.environ.items() if key != "NUMBA_ENABLE_CUDASIM"}

DESCRIBE = textwrap.dedent("""\
    import json, numpy as np, convkit
    info = {b.name: b for b in convkit.list_backends()}["cuda"]
    auto = convkit.explain("conv2d", np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3))).backend
    print(json.dumps({"available": info.available, "reason": info.reason, "simulated": info.simulated,
                      "device": info.device, "auto": auto}))
""")


def _passes_on_the_simulator(script: str) -> None:
    """Run ``script`` in a fresh process on the simulator; it prints "ok" last when it passed."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=SIMULATOR,
        check=False,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"


def _describe(environment):
    done = subprocess.run(
        [sys.executable, "-c", DESCRIBE],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_a_gpu_the_backend_is_unavailable_with_the_reason():
    described = _describe(NO_SIMULATOR)
    if described["available"]:
        pytest.skip(f"a GPU is present: {described['device']}")
    assert "GPU" in described["reason"] or "CUDA" in described["reason"]
    assert described["auto"] != "cuda"


def test_on_the_simulator_the_backend_is_available_simulated_and_never_auto():
    described = _describe(SIMULATOR)
    assert described["available"] and described["simulated"]
    assert "simulator" in described["device"].lower()
    assert described["auto"] != "cuda"


@pytest.mark.slow
def test_small_matrix_passes_on_the_simulator():
    done = subprocess.run(
        [sys.executable, "-m", "convkit", "check", "cuda", "--small"],
        capture_output=True,
        text=True,
        env=SIMULATOR,
        check=False,
        timeout=3000,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " 0 failed" in done.stdout.splitlines()[-1]


DEVICE_ARRAYS = textwrap.dedent("""\
    import numpy as np, pytest, convkit, convkit_cuda
    from numba import cuda
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((4, 2, 3, 2))
    dx, dw = cuda.to_device(x), cuda.to_device(w)
    for flip in (True, False):
        got = convkit.conv2d(dx, dw, border_mode="half", subsample=(1, 2), filter_flip=flip,
                             num_groups=2, backend="cuda")
        expected = convkit.conv2d(x, w, border_mode="half", subsample=(1, 2), filter_flip=flip,
                                  num_groups=2, backend="scipy")
        assert type(got) is type(dx) and got.shape == expected.shape  # stays on the device
        assert np.allclose(got.copy_to_host(), expected, atol=1e-12)
    assert np.array_equal(dx.copy_to_host(), x) and np.array_equal(dw.copy_to_host(), w)
    a, b = rng.standard_normal((3, 20)), rng.standard_normal((1, 30))
    for mode in ("full", "same", "valid"):
        got = convkit.convolve_nd(cuda.to_device(a), cuda.to_device(b), mode, axes=1, backend="cuda")
        expected = convkit.convolve_nd(a, b, mode, axes=1, backend="scipy")
        assert type(got) is type(dx) and np.allclose(got.copy_to_host(), expected, atol=1e-12)
    with convkit_cuda.use_stream(cuda.stream()):
        assert np.allclose(convkit.convolve_nd(a, b, backend="cuda"), convkit.convolve_nd(a, b, backend="scipy"))
    with pytest.raises(TypeError, match="input is a device .GPU. array but filters is not"):
        convkit.conv2d(dx, w, backend="cuda")
    with pytest.raises(TypeError, match="does not cast device arrays"):
        convkit.conv2d(cuda.to_device(x.astype(np.float32)), dw, num_groups=2, backend="cuda")
    with pytest.raises(TypeError, match="non-contiguous device array"):
        convkit.convolve_nd(cuda.to_device(np.asfortranarray(rng.standard_normal((5, 6)))),
                            cuda.to_device(np.ones((2, 2))), backend="cuda")
    with pytest.raises(ValueError, match="empty or 0-d device array"):
        convkit.convolve_nd(cuda.to_device(np.ones((0, 3))), cuda.to_device(np.ones((1, 3))), backend="cuda")
    with pytest.raises(convkit.BackendUnavailableError, match="does not take device .GPU. arrays"):
        convkit.conv2d(dx, dw, num_groups=2, backend="numba")
    with pytest.raises(convkit.BackendUnavailableError, match="auto never picks it"):
        convkit.conv2d(dx, dw, num_groups=2)
    with pytest.raises(TypeError, match="expected a CUDA stream"):
        with convkit_cuda.use_stream(None):
            pass
    print("ok")
""")


@pytest.mark.slow
def test_device_arrays_stay_on_the_device_on_the_simulator():
    _passes_on_the_simulator(DEVICE_ARRAYS)


VARIANTS = textwrap.dedent("""\
    import numpy as np, convkit
    from convkit.plugin import normalize_conv, normalize_convolve
    from convkit.testing import resolve_backend
    from convkit_cuda._backend import SIMULATOR_THREADS, _conv_layout, _convolve_layout, _run
    from convkit_cuda._blocks import PIXEL_BLOCKS, plan_launch
    rng = np.random.default_rng(1)
    scipy = resolve_backend("scipy")

    def pixels_per_thread(layout, problem):
        return plan_launch(layout.kernel_shape[1:], layout.stride[1:], layout.dilation[1:], layout.out_shape[2],
                           layout.channels, layout.filters, np.dtype(problem.dtype).name, SIMULATOR_THREADS).pixels

    def at_output_widths(make_problem, layout_of, covered):
        # The output's width picks the pixels per thread: outputs 6, 12 and 20 wide get 1, 2 and 4
        # on the simulator's 4-thread blocks.  The first input width to reach each one is taken.
        found = {}
        for target in (6, 12, 20):
            for width in range(1, 80):
                try:
                    problem = make_problem(width)
                except ValueError:  # no output at this width
                    continue
                layout = layout_of(problem)
                if layout.out_shape[2] >= target:
                    found[width] = (problem, layout)
                    covered.add(pixels_per_thread(layout, problem))
                    break
        return found.values()

    def check(problem, layout, reference):
        assert np.isfinite(reference).mean() > 0.5  # the values are compared, not only NaN
        got = _run(layout, problem)
        scale = np.max(np.abs(reference[np.isfinite(reference)]), initial=0.0) + 1
        assert np.allclose(got, reference, rtol=1e-10, atol=1e-10 * scale, equal_nan=True), (
            problem, np.nanmax(np.abs(got - reference)))

    # filters per thread 1, 2, 4 (3 in a block of 4) and 8 (9: a full block and a partial one);
    # unit and non-unit stride, dilation, padding, groups, both flips; every pixel block
    cases = [((1, 2, 9, 80), (1, 2, 3, 3), 1, "valid", (1, 1), (1, 1), True),
             ((2, 4, 8, 80), (4, 2, 2, 3), 2, "full", (1, 2), (2, 1), False),
             ((1, 3, 9, 80), (3, 3, 3, 2), 1, "half", (2, 1), (1, 1), True),
             ((1, 1, 7, 80), (9, 1, 3, 3), 1, (1, 2), (1, 3), (1, 2), False)]
    covered = set()
    for image_shape, filter_shape, groups, border, stride, dilation, flip in cases:
        x, w = rng.standard_normal(image_shape), rng.standard_normal(filter_shape)
        x[0, 0, 0, 0] = np.nan
        if w.shape[0] > 1:
            w[-1, 0, 1, 0] = np.inf  # one filter's outputs only

        def make_problem(width):
            return normalize_conv(x[..., :width], w, border, stride, flip, dilation, groups, None, "conv2d")

        for problem, layout in at_output_widths(make_problem, _conv_layout, covered):
            check(problem, layout, scipy.conv(problem))
    assert covered == set(PIXEL_BLOCKS), covered

    # a kernel larger than the weight chunk (chunked rows and columns), several channels per chunk
    x, w = rng.standard_normal((1, 3, 12, 12)), rng.standard_normal((8, 3, 11, 13))
    problem = normalize_conv(x, w, "full", 1, True, 1, 1, None, "conv2d")
    plan = plan_launch((11, 13), (1, 1), (1, 1), 24, 3, 8, "float64", 4)
    assert (plan.rows, plan.columns) != (11, 13), plan
    check(problem, _conv_layout(problem), scipy.conv(problem))
    x, w = rng.standard_normal((1, 6, 5, 6)), rng.standard_normal((2, 6, 2, 2))
    problem = normalize_conv(x, w, "valid", 1, True, 1, 1, None, "conv2d")
    assert plan_launch((2, 2), (1, 1), (1, 1), 5, 6, 2, "float64", 4).channels == 6
    check(problem, _conv_layout(problem), scipy.conv(problem))

    # complex: four real multiply-adds per term, the same layout
    x = rng.standard_normal((2, 4, 9, 10)) + 1j * rng.standard_normal((2, 4, 9, 10))
    w = (rng.standard_normal((6, 2, 3, 3)) - 1j * rng.standard_normal((6, 2, 3, 3))).astype(np.complex64)
    problem = normalize_conv(x.astype(np.complex64), w, "half", (1, 2), True, 1, 2, None, "conv2d")
    reference = normalize_conv(x, w.astype(np.complex128), "half", (1, 2), True, 1, 2, None, "conv2d")
    got = _run(_conv_layout(problem), problem)
    assert got.dtype == np.complex64
    assert np.allclose(got, scipy.conv(reference), rtol=1e-5, atol=1e-5)

    # convolve_nd: broadcast axes, a 3-d kernel, and the kernel as the larger operand
    covered = set()
    for a_shape, b_shape, mode, axes in [((3, 1, 80), (1, 2, 5), "same", (2,)),
                                         ((5, 4, 80), (2, 3, 3), "full", None),
                                         ((2, 80), (2, 14), "full", (1,))]:
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)

        def make_problem(width):
            return normalize_convolve(a[..., :width], b, mode, axes)

        for problem, layout in at_output_widths(make_problem, _convolve_layout, covered):
            check(problem, layout, scipy.convolve_nd(problem))
    assert covered == set(PIXEL_BLOCKS), covered
    print("ok")
""")


@pytest.mark.slow
def test_every_kernel_variant_matches_the_reference_on_the_simulator():
    _passes_on_the_simulator(VARIANTS)


def test_launch_plans_fit_shared_memory():
    from convkit_cuda._blocks import capacity, filters_per_thread, plan_launch

    assert [filters_per_thread(n) for n in (1, 2, 3, 4, 5, 8, 9, 64)] == [1, 2, 4, 4, 8, 8, 8, 8]
    for dtype_name in ("float32", "float64"):
        patch_capacity, tap_capacity = capacity(dtype_name)
        for kernel in ((1, 1), (3, 3), (7, 7), (31, 31), (1, 200)):
            for stride in ((1, 1), (2, 2), (4, 1)):
                for dilation in ((1, 1), (3, 2)):
                    for filters in (1, 8):
                        plan = plan_launch(
                            kernel, stride, dilation, 100, 64, filters, dtype_name, 16
                        )
                        rows = (plan.threads_y - 1) * stride[0] + dilation[0] * (plan.rows - 1) + 1
                        columns = (
                            (plan.tile[1] - 1) * stride[1] + dilation[1] * (plan.columns - 1) + 1
                        )
                        assert plan.channels * rows * columns <= patch_capacity, plan
                        assert plan.channels * plan.rows * plan.columns * filters <= tap_capacity, (
                            plan
                        )
                        assert 1 <= plan.rows <= kernel[0] and 1 <= plan.columns <= kernel[1]


def test_the_cost_model_counts_copies_only_for_host_operands_and_scales_with_work():
    import dataclasses

    import numpy as np

    from convkit.plugin import normalize_conv, normalize_convolve
    from convkit_cuda._cost import COPY_BYTES_PER_SECOND, device_peak, estimate_seconds

    h100 = device_peak("H100", (9, 0), 132, 1_980_000, 2_619_000, 5120)
    assert (
        66e12 < 2 * h100.float32 < 68e12 and h100.float64 == h100.float32 / 2
    )  # the data sheet's 67 TFLOP/s
    assert 3.3e12 < h100.bytes_per_second < 3.4e12  # and its 3.35 TB/s
    assert device_peak("RTX", (8, 6), 82, 1_700_000, 9_751_000, 384).float64 < h100.float64 / 10
    small = normalize_conv(
        np.ones((1, 8, 16, 16), np.float32),
        np.ones((8, 8, 3, 3), np.float32),
        "half",
        1,
        True,
        1,
        1,
        None,
        "conv2d",
    )
    large = normalize_conv(
        np.ones((8, 64, 56, 56), np.float32),
        np.ones((64, 64, 3, 3), np.float32),
        "half",
        1,
        True,
        1,
        1,
        None,
        "conv2d",
    )
    on_device = dataclasses.replace(large, on_device=True)
    assert estimate_seconds(small, h100) < estimate_seconds(large, h100)
    copies = (
        large.input.nbytes + large.filters.nbytes + 8 * 64 * 56 * 56 * 4
    ) / COPY_BYTES_PER_SECOND
    assert np.isclose(estimate_seconds(large, h100) - estimate_seconds(on_device, h100), copies)
    as_float64 = normalize_conv(
        np.ones((8, 64, 56, 56)), np.ones((64, 64, 3, 3)), "half", 1, True, 1, 1, None, "conv2d"
    )
    assert estimate_seconds(as_float64, h100) > estimate_seconds(large, h100)
    # convolve_nd runs one filter per thread: a lower rate per multiply-add than a wide layer
    rows = normalize_convolve(
        np.ones((64, 4096), np.float32), np.ones((1, 9), np.float32), "full", (1,)
    )
    per_fma = [
        (estimate_seconds(dataclasses.replace(p, on_device=True), h100) - 20e-6) / p.multiply_adds
        for p in (rows, large)
    ]
    assert per_fma[0] > per_fma[1]
    # a layer with few multiply-adds per byte is never predicted faster than its memory traffic
    depthwise = normalize_conv(
        np.ones((64, 128, 56, 56), np.float32),
        np.ones((128, 1, 3, 3), np.float32),
        "half",
        1,
        True,
        1,
        128,
        None,
        "conv2d",
    )
    moved = 2 * depthwise.input.nbytes + depthwise.filters.nbytes
    assert (
        estimate_seconds(dataclasses.replace(depthwise, on_device=True), h100)
        >= 20e-6 + moved / h100.bytes_per_second
    )
    pointwise = normalize_conv(
        np.ones((1, 1, 4096, 4096), np.float32),
        np.ones((1, 1, 1, 1), np.float32),
        "valid",
        1,
        True,
        1,
        1,
        None,
        "conv2d",
    )
    moved = 2 * pointwise.input.nbytes + pointwise.filters.nbytes
    assert np.isclose(
        estimate_seconds(dataclasses.replace(pointwise, on_device=True), h100),
        20e-6 + moved / h100.bytes_per_second,
    )


def test_the_compiler_gets_numpy_aliases_removed_after_numba_cuda_was_released(monkeypatch):
    """numba-cuda 0.30.4 overloads np.row_stack, which NumPy 2.5 removed: the alias exists
    only while numba-cuda's array module is imported, and is gone again afterwards."""
    import importlib

    from convkit_cuda import _compat

    seen = []
    monkeypatch.delattr(np, "row_stack", raising=False)
    monkeypatch.setattr(
        importlib, "import_module", lambda name: seen.append((name, getattr(np, "row_stack", None)))
    )
    monkeypatch.delitem(sys.modules, "numba.cuda.np.arrayobj", raising=False)
    _compat.prepare_compiler.cache_clear()
    try:
        _compat.prepare_compiler()
    finally:
        _compat.prepare_compiler.cache_clear()
    assert seen == [("numba.cuda.np.arrayobj", np.vstack)]
    assert not hasattr(np, "row_stack")


def test_info_says_how_to_run_cuda_on_the_simulator():
    done = subprocess.run(
        [sys.executable, "-m", "convkit", "info"],
        capture_output=True,
        text=True,
        env=NO_SIMULATOR,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cuda_row = next(line for line in done.stdout.splitlines() if line.startswith("cuda "))
    if " yes " in cuda_row:
        pytest.skip("a GPU is present")
    assert "NUMBA_ENABLE_CUDASIM=1" in cuda_row and "simulator" in cuda_row
