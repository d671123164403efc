"""Dask arrays on a real cluster: ``distributed.LocalCluster`` with two worker processes of one
thread each, started here.

Results equal the in-memory calls (hypothesis shapes and chunkings; the conformance kit's FFT
bound, once per overlap-add partial result); the backend chosen in the caller (backend=,
use_backend, set_backend, CONVKIT_BACKEND) is the one that runs in the workers, which a spy
backend proves by writing the process id that ran each block to a file; a worker's task uses
the worker's thread budget.  Every computation waits at most ``TIMEOUT`` seconds, so a hang
fails instead of blocking the run.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convkit  # noqa: E402
from convkit._dask import force_strategy, task_threads  # noqa: E402
from convkit.testing._check import _expectation, _nonfinite_mismatch, _problem  # noqa: E402
from convkit.testing.strategies import (  # noqa: E402
    chunkings,
    conv_cases,
    convolve_nd_cases,
)

TIMEOUT = 120
SPY_MODULE = "convkit_dask_spy"
# A module the caller and the workers import by name (a class pickled by reference must be
# importable where it is unpickled; test modules are not, under --import-mode=importlib).
SPY_SOURCE = '''\
import os

import convkit
from convkit.plugin import ALL_DTYPES, Backend, Capabilities, resolve_backend


class PidSpy(Backend):
    """The SciPy reference, writing "pid threads" to a file for each block it computes."""

    name = "dask-pid-spy"
    capabilities = Capabilities(dtypes=ALL_DTYPES)

    def __init__(self, path):
        self.path = path

    def _record(self):
        with open(self.path, "a", encoding="ascii") as log:
            log.write(f"{os.getpid()} {convkit.get_num_threads()}\\n")

    def convolve_nd(self, problem):
        self._record()
        return resolve_backend("scipy").convolve_nd(problem)

    def conv(self, problem):
        self._record()
        return resolve_backend("scipy").conv(problem)


def register(path):
    convkit.register_backend(PidSpy(path), replace=True)


def unregister():
    try:
        convkit.unregister_backend(PidSpy.name)
    except convkit.UnknownBackendError:
        pass
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spy")
    (folder / f"{SPY_MODULE}.py").write_text(SPY_SOURCE)
    sys.path.insert(0, str(folder))
    cluster = distributed.LocalCluster(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        # The scheduler serves HTTP even without a dashboard (on 8787 with None): a free
        # port keeps runs side by side from colliding.
        dashboard_address=":0",
    )
    client = distributed.Client(cluster, timeout=TIMEOUT)

    def importable_spy():
        sys.path.insert(0, str(folder))

    client.run(importable_spy)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        sys.path.remove(str(folder))
        sys.modules.pop(SPY_MODULE, None)


def _compute(client, collection):
    return client.compute(collection).result(timeout=TIMEOUT)


def _strategy(name):
    return contextlib.nullcontext() if name is None else force_strategy(name)


class _AnyMethod:
    """Stands for the blocks' backends in the kit's bound: the FFT one, the wider."""

    def method(self, problem):
        return "fft"


def _check_case(case, first, second, got, memory, pieces):
    assert got.shape == memory.shape and got.dtype == memory.dtype, (got.shape, got.dtype)
    mismatch = _nonfinite_mismatch(got, memory)
    assert mismatch is None, f"non-finite outputs differ from the in-memory call: {mismatch}"
    problem = _problem(case, first, second)
    expected, bound, _ = _expectation(_AnyMethod(), case, problem, first, second)
    finite = np.isfinite(expected)
    with np.errstate(invalid="ignore"):
        error = np.where(finite, np.abs(got.astype(expected.dtype) - expected), 0.0)
    wrong = ~(error <= pieces * bound)
    assert not wrong.any(), (
        f"{int(wrong.sum())} outputs outside {pieces} x the kit's bound; worst error "
        f"{float(np.nanmax(error - pieces * bound)):.3g} over it"
    )


def _pieces(chunks, reaches):
    count = 1
    for axis_chunks, reach in zip(chunks, reaches):
        if reach is None:
            count *= len(axis_chunks)
        else:
            count *= min(len(axis_chunks), math.ceil(max(reach - 1, 0) / min(axis_chunks)) + 1)
    return count


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=convolve_nd_cases(max_size=8), data=st.data())
def test_convolve_nd_on_the_cluster_equals_memory(client, case, data):
    first, second = case.arrays()
    params = case.kwargs
    policy = params.get("nan_policy", "propagate")
    strategy = data.draw(
        st.sampled_from([None, "halo"] + (["overlap_add"] if policy != "interpolate" else []))
    )
    chunks = data.draw(chunkings(first.shape, max_blocks=32, max_cuts=3))
    memory = convkit.convolve_nd(first, second, **params)
    with _strategy(strategy):
        result = convkit.convolve_nd(da.from_array(first, chunks=chunks), second, **params)
    assert isinstance(result, da.Array)
    got = _compute(client, result)
    axes = params["axes"]
    convolved = range(first.ndim) if axes is None else axes
    reaches = [
        min(first.shape[a], second.shape[a]) if a in convolved else 1 for a in range(first.ndim)
    ]
    pieces = 1 if strategy == "halo" else _pieces(chunks, reaches)
    _check_case(case, first, second, got, memory, pieces)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=conv_cases(max_size=6), data=st.data())
def test_conv_on_the_cluster_equals_memory(client, case, data):
    first, second = case.arrays()
    params = case.kwargs
    chunks = data.draw(chunkings(first.shape, max_blocks=32, max_cuts=3))
    memory = convkit.conv(first, second, **params)
    result = convkit.conv(da.from_array(first, chunks=chunks), second, **params)
    assert isinstance(result, da.Array)
    assert result.chunks[0] == chunks[0]
    _check_case(case, first, second, _compute(client, result), memory, 1)


@pytest.fixture
def spy_log(client, tmp_path):
    """A fresh log file, and the spy registered under the same name in the caller and in
    every worker, writing to it."""
    path = str(tmp_path / "blocks.log")
    spy = importlib.import_module(SPY_MODULE)
    spy.register(path)
    client.run(lambda: importlib.import_module(SPY_MODULE).register(path))
    yield path
    spy.unregister()
    client.run(lambda: importlib.import_module(SPY_MODULE).unregister())


def _logged(path):
    with open(path, encoding="ascii") as log:
        return [tuple(int(field) for field in line.split()) for line in log]


def _worker_pids(client):
    return set(client.run(os.getpid).values())


@pytest.mark.parametrize("how", ["backend=", "use_backend", "set_backend", "CONVKIT_BACKEND"])
@pytest.mark.parametrize("strategy", [None, "halo", "overlap_add"])
def test_the_callers_backend_choice_runs_in_the_workers(
    client, spy_log, how, strategy, monkeypatch
):
    """The choice is made in the caller only, and undone before computing."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 40))
    w = rng.standard_normal((1, 7))
    lazy = da.from_array(x, chunks=(3, 8))
    call = dict(mode="same", axes=1, boundary="wrap")
    with _strategy(strategy):
        if how == "backend=":
            module = importlib.import_module(SPY_MODULE)
            spy = module.PidSpy(spy_log)
            # Registered nowhere: only the object that travels with the tasks can run.
            module.unregister()
            client.run(lambda: importlib.import_module(SPY_MODULE).unregister())
            result = convkit.convolve_nd(lazy, w, **call, backend=spy)
        elif how == "use_backend":
            with convkit.use_backend("dask-pid-spy"):
                result = convkit.convolve_nd(lazy, w, **call)
        elif how == "set_backend":
            convkit.set_backend("dask-pid-spy")
            result = convkit.convolve_nd(lazy, w, **call)
            convkit.set_backend(None)
        else:
            monkeypatch.setenv("CONVKIT_BACKEND", "dask-pid-spy")
            result = convkit.convolve_nd(lazy, w, **call)
            monkeypatch.delenv("CONVKIT_BACKEND")
    assert not os.path.exists(spy_log), "building the graph ran a block"
    got = _compute(client, result)
    pids = {pid for pid, _ in _logged(spy_log)}
    assert pids, "the spy backend never ran: the workers used another backend"
    assert os.getpid() not in pids, "blocks ran in the caller, not in the workers"
    assert pids <= _worker_pids(client), (pids, _worker_pids(client))
    np.testing.assert_allclose(
        got, convkit.convolve_nd(x, w, **call, backend="scipy"), rtol=0, atol=1e-10
    )


def test_a_conv_layers_backend_choice_runs_in_the_workers(client, spy_log):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 2, 19, 13))
    w = rng.standard_normal((3, 2, 3, 3))
    with convkit.use_backend("dask-pid-spy"):
        result = convkit.conv2d(da.from_array(x, chunks=(1, 2, 7, 6)), w, "half", subsample=2)
    got = _compute(client, result)
    pids = {pid for pid, _ in _logged(spy_log)}
    assert pids and os.getpid() not in pids and pids <= _worker_pids(client)
    np.testing.assert_allclose(got, convkit.conv2d(x, w, "half", subsample=2), rtol=0, atol=1e-10)


def test_a_worker_task_uses_the_workers_thread_budget(client, spy_log):
    """One thread per worker, OMP_NUM_THREADS=1 (set by the nanny): a task may use one
    thread, and a block's backend sees one thread."""

    def probe():
        return os.environ.get("OMP_NUM_THREADS"), task_threads()

    future = client.submit(probe, pure=False)
    omp, threads = future.result(timeout=TIMEOUT)
    assert omp == "1"
    assert threads == 1
    x = np.random.default_rng(9).standard_normal((8, 64))
    with convkit.use_backend("dask-pid-spy"):
        result = convkit.convolve_nd(da.from_array(x, chunks=(2, 16)), np.ones((1, 5)), "same")
    _compute(client, result)
    seen = {threads for _, threads in _logged(spy_log)}
    assert seen == {1}, f"blocks on a one-thread worker ran with {seen} threads"


def test_a_numpy_signal_with_a_dask_kernel_on_the_cluster(client):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 30))
    w = rng.standard_normal((3, 4))
    result = convkit.correlate_nd(x, da.from_array(w, chunks=(1, 4)), "full", axes=1)
    assert isinstance(result, da.Array)
    np.testing.assert_allclose(
        _compute(client, result), convkit.correlate_nd(x, w, "full", axes=1), rtol=0, atol=1e-10
    )
