"""Backend discovery, registration and selection (docs/choosing.rst)."""

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import convkit
from convkit import _discovery, _selection
from convkit.plugin import Availability, Backend, Capabilities

ONES = np.ones(4)


class Labelled(Backend):
    """Answers every problem with a constant, so tests can see who ran."""

    capabilities = Capabilities()

    def __init__(
        self,
        name,
        value,
        available=True,
        simulated=False,
        estimate=None,
        capabilities=None,
        priority=0,
    ):
        self.name, self.value, self.estimate, self.priority = name, value, estimate, priority
        self._availability = Availability(
            available, "" if available else "no device here", simulated=simulated
        )
        if capabilities is not None:
            self.capabilities = capabilities

    def availability(self):
        return self._availability

    def estimate_seconds(self, problem):
        return self.estimate

    def convolve_nd(self, problem):
        return np.full(problem.output_shape, self.value, dtype=problem.dtype)

    def conv(self, problem):
        return np.full(problem.output_shape, self.value, dtype=problem.dtype)


@pytest.fixture
def labelled():
    names = []

    def make(name, value, **kwargs):
        convkit.register_backend(Labelled(name, value, **kwargs))
        names.append(name)
        return name

    yield make
    for name in names:
        convkit.unregister_backend(name)


def who(**kwargs):
    return convkit.convolve_nd(ONES, ONES, **kwargs)[0]


def test_precedence(labelled, monkeypatch):
    labelled("t-call", 1.0)
    labelled("t-context", 2.0)
    labelled("t-process", 3.0)
    labelled("t-env", 4.0)
    monkeypatch.setenv("CONVKIT_BACKEND", "t-env")
    assert who() == 4.0  # the environment variable is read at call time
    convkit.set_backend("t-process")
    assert who() == 3.0
    with convkit.use_backend("t-context"):
        assert who() == 2.0
        assert who(backend="t-call") == 1.0
        with convkit.use_backend("t-process"):
            assert who() == 3.0
        assert who() == 2.0
    assert who() == 3.0
    convkit.set_backend(None)
    assert who() == 4.0
    monkeypatch.delenv("CONVKIT_BACKEND")
    assert convkit.convolve_nd([1.0, 2.0], [1.0, 1.0], backend="scipy").round(9).tolist() == [
        1.0,
        3.0,
        2.0,
    ]


def test_backend_object_selects_directly():
    assert who(backend=Labelled("t-object", 7.0)) == 7.0
    with convkit.use_backend(Labelled("t-object2", 8.0)):
        assert who() == 8.0


def test_priority_list_skips_unavailable_and_unsuitable(labelled, monkeypatch):
    labelled("t-down", 1.0, available=False)
    labelled("t-f32only", 2.0, capabilities=Capabilities(dtypes=frozenset({np.dtype(np.float32)})))
    labelled("t-up", 3.0)
    with convkit.use_backend("t-down, t-f32only, t-up"):
        assert who() == 3.0  # float64 problem: t-f32only cannot do it
        assert convkit.convolve_nd(ONES.astype(np.float32), ONES.astype(np.float32))[0] == 2.0
    monkeypatch.setenv("CONVKIT_BACKEND", "t-down,t-up")
    assert who() == 3.0
    with (
        convkit.use_backend(["t-down", "t-f32only"]),
        pytest.raises(convkit.BackendUnavailableError) as caught,
    ):
        who()
    assert "t-down: unavailable: no device here" in str(caught.value)
    assert "does not support dtype float64" in str(caught.value)


def test_auto_in_a_priority_list(labelled):
    labelled("t-down2", 1.0, available=False)
    with convkit.use_backend("t-down2,auto"):
        assert who() is not None


def test_strict_backend_argument_never_falls_back(labelled):
    labelled("t-off", 1.0, available=False)
    labelled("t-conv-only", 2.0, capabilities=Capabilities(operations=frozenset({"conv"})))
    with pytest.raises(
        convkit.BackendUnavailableError, match="'t-off' cannot run .*no device here"
    ):
        who(backend="t-off")
    with pytest.raises(convkit.BackendUnavailableError, match="does not implement convolve_nd"):
        who(backend="t-conv-only")
    assert (
        convkit.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), backend="t-conv-only")[0, 0, 0]
        == 2.0
    )


def test_unknown_names_list_installed_backends(monkeypatch):
    for attempt in (
        lambda: convkit.use_backend("nope").__enter__(),
        lambda: convkit.set_backend("scipy,nope"),
        lambda: who(backend="nope"),
    ):
        with pytest.raises(
            convkit.UnknownBackendError,
            match="unknown convkit backend 'nope'; installed backends: .*scipy",
        ):
            attempt()
    monkeypatch.setenv("CONVKIT_BACKEND", "nope")
    with pytest.raises(convkit.UnknownBackendError):
        who()
    monkeypatch.setenv("CONVKIT_BACKEND", "scipy,,numba")
    with pytest.raises(
        ValueError, match="CONVKIT_BACKEND='scipy,,numba' is not valid: .*no empty entries"
    ):
        who()


def test_auto_uses_estimates_and_never_a_simulated_device(labelled):
    # estimates far below any real backend's, so that installed engines don't interfere
    labelled("t-slow", 1.0, estimate=2e-15)
    labelled("t-fast", 2.0, estimate=1e-15)
    labelled("t-sim", 3.0, estimate=0.0, simulated=True)
    assert who() == 2.0
    assert who(backend="t-sim") == 3.0  # usable by name
    assert who(backend="auto") == 2.0


def test_selection_is_context_local_across_threads(labelled):
    labelled("t-thread-a", 1.0)
    labelled("t-thread-b", 2.0)
    barrier = threading.Barrier(2)
    seen = {}

    def work(name, value):
        with convkit.use_backend(name):
            barrier.wait()
            seen[name] = [who() for _ in range(20)]
            barrier.wait()

    threads = [
        threading.Thread(target=work, args=args)
        for args in (("t-thread-a", 1.0), ("t-thread-b", 2.0))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(seen["t-thread-a"]) == {1.0} and set(seen["t-thread-b"]) == {2.0}


def test_selection_is_context_local_across_asyncio_tasks(labelled):
    labelled("t-task-a", 1.0)
    labelled("t-task-b", 2.0)

    async def task(name):
        with convkit.use_backend(name):
            await asyncio.sleep(0)
            first = who()
            await asyncio.sleep(0)
            return first, who()

    async def both():
        return await asyncio.gather(task("t-task-a"), task("t-task-b"))

    assert asyncio.run(both()) == [(1.0, 1.0), (2.0, 2.0)]


@pytest.mark.parametrize(
    "result, message",
    [
        (lambda p: np.zeros((3,), p.dtype), "returned shape (3,)"),
        (lambda p: np.zeros(p.output_shape, np.float32), "returned dtype float32"),
        (lambda p: [0.0] * p.output_shape[0], "returned list, not an array"),
    ],
)
def test_result_shape_dtype_and_type_are_checked(result, message):
    class Wrong(Backend):
        name = "t-wrong"

        def convolve_nd(self, problem):
            return result(problem)

    with pytest.raises(convkit.BackendResultError) as caught:
        who(backend=Wrong())
    assert message in str(caught.value) and "'t-wrong'" in str(caught.value)


def test_register_backend_rules(labelled):
    labelled("t-dup", 1.0)
    with pytest.raises(ValueError, match="already installed"):
        convkit.register_backend(Labelled("t-dup", 2.0))
    convkit.register_backend(Labelled("t-dup", 2.0), replace=True)
    assert who(backend="t-dup") == 2.0
    with pytest.raises(ValueError, match="cannot be named"):
        convkit.register_backend(Labelled("a,b", 1.0))
    with pytest.raises(ValueError, match="cannot be named"):
        convkit.register_backend(Labelled("auto", 1.0))
    with pytest.raises(ValueError, match="non-empty str name"):
        convkit.register_backend(Labelled("", 1.0))
    with pytest.raises(TypeError, match="subclass convkit.plugin.Backend"):
        convkit.register_backend(object())


def test_list_backends_reports_everything(labelled):
    labelled("t-listed", 1.0, available=False)
    infos = {info.name: info for info in convkit.list_backends()}
    scipy_info = infos["scipy"]
    assert scipy_info.available and scipy_info.version and scipy_info.threads >= 1
    assert set(scipy_info.operations) == {"conv", "convolve_nd"}
    assert "complex128" in scipy_info.dtypes and "convkit-core" in scipy_info.origin
    assert not infos["t-listed"].available and infos["t-listed"].reason == "no device here"


FAKE_PLUGINS = {
    "fake_convkit_plugins-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: fake-convkit-plugins\nVersion: 0.1\n",
    "fake_convkit_plugins-0.1.dist-info/entry_points.txt": textwrap.dedent("""\
        [convkit.backends]
        t-broken-import = fake_broken_plugin:Backend
        t-not-a-backend = fake_good_plugin:NOT_A_BACKEND
        t-raises-on-init = fake_good_plugin:RaisesOnInit
        t-wrong-name = fake_good_plugin:WrongName
        t-good = fake_good_plugin:GoodBackend
        """),
    "fake_broken_plugin.py": "raise ImportError('libfakeengine.so: cannot open shared object file')\n",
    "fake_good_plugin.py": textwrap.dedent("""\
        import numpy as np
        from convkit.plugin import Backend, Capabilities

        NOT_A_BACKEND = 42

        class RaisesOnInit(Backend):
            name = "t-raises-on-init"
            def __init__(self):
                raise RuntimeError("driver version mismatch")

        class WrongName(Backend):
            name = "something-else"

        class GoodBackend(Backend):
            name = "t-good"
            capabilities = Capabilities(operations=frozenset({"convolve_nd"}))
            def convolve_nd(self, problem):
                return np.full(problem.output_shape, 42.0, problem.dtype)
        """),
}


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    for relative, text in FAKE_PLUGINS.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    _discovery._registry.forget_discovery()
    yield tmp_path
    monkeypatch.undo()
    _discovery._registry.forget_discovery()
    for module in ("fake_broken_plugin", "fake_good_plugin"):
        sys.modules.pop(module, None)


def test_broken_plugins_are_reported_not_fatal(fake_plugins):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = {info.name: info for info in convkit.list_backends()}
    messages = " | ".join(str(w.message) for w in caught)
    assert all(issubclass(w.category, RuntimeWarning) for w in caught)
    expectations = {
        "t-broken-import": "ImportError: libfakeengine.so",
        "t-not-a-backend": "not a convkit.plugin.Backend",
        "t-raises-on-init": "RuntimeError: driver version mismatch",
        "t-wrong-name": "calls itself 'something-else'",
    }
    for name, fragment in expectations.items():
        assert not infos[name].available and fragment in infos[name].reason, infos[name]
        assert name in messages
    assert infos["t-good"].available and infos["scipy"].available
    assert convkit.convolve_nd(ONES, ONES).shape == (7,)  # auto still works
    assert who(backend="t-good") == 42.0
    with pytest.raises(convkit.BackendUnavailableError, match="failed to load: ImportError"):
        who(backend="t-broken-import")
    with convkit.use_backend("t-broken-import,t-good"):
        assert who() == 42.0


def test_environment_choice_in_a_fresh_process(fake_plugins):
    script = "import numpy, convkit; print(convkit.convolve_nd(numpy.ones(3), numpy.ones(2))[0])"
    environment = {
        "PYTHONPATH": str(fake_plugins),
        "CONVKIT_BACKEND": "t-broken-import,t-good",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-W", "ignore::RuntimeWarning", "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42.0"
    info = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "convkit", "info"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert info.returncode == 0, info.stderr
    assert re.search(r"t-broken-import +no: failed to load: ImportError", info.stdout), info.stdout
    assert "RuntimeWarning" in info.stderr


def _write_files(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _distribution(name, entry_points):
    """The files of a fake installed distribution registering ``entry_points`` (name: value)."""
    folder = f"{name.replace('-', '_')}-0.1.dist-info"
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    return {
        f"{folder}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
        f"{folder}/entry_points.txt": f"[convkit.backends]\n{lines}",
    }


IMPOSTOR = textwrap.dedent("""\
    import numpy as np
    from convkit.plugin import Backend

    class Impostor(Backend):
        def __init__(self, name="scipy"):
            self.name = name
        def convolve_nd(self, problem):
            return np.full(problem.output_shape, 666.0, problem.dtype)

    def twin():
        return Impostor("t-twin")
    """)


@pytest.fixture
def colliding_plugins(tmp_path, monkeypatch):
    _write_files(
        tmp_path,
        {
            **_distribution(
                "fake-impostor",
                {
                    "scipy": "fake_impostor:Impostor",
                    "t-twin": "fake_impostor:twin",
                    "numba": "fake_impostor:Impostor",
                },
            ),
            **_distribution("fake-twin", {"t-twin": "fake_impostor:twin"}),
            "fake_impostor.py": IMPOSTOR,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _discovery._registry.forget_discovery()
    yield tmp_path
    monkeypatch.undo()
    _discovery._registry.forget_discovery()
    sys.modules.pop("fake_impostor", None)


def test_no_plugin_takes_over_a_name(colliding_plugins, caplog):
    with caplog.at_level("WARNING", logger="convkit"):
        infos = {info.name: info for info in convkit.list_backends()}
    # convkit-core keeps its reference backend; the impostor is listed, unavailable.
    assert infos["scipy"].available and "convkit-core" in infos["scipy"].origin
    assert convkit.convolve_nd(ONES, ONES, backend="scipy").round(9)[0] == 1.0
    with convkit.use_backend("t-twin,scipy"):
        assert convkit.convolve_nd(ONES, ONES).round(9)[0] == 1.0
    numba_is_own = (
        "convkit-numba" in infos["numba"].origin
    )  # the plugin distributions are convkit's own too
    if numba_is_own:
        assert not infos["numba (fake-impostor)"].available
    else:  # without convkit-numba, the impostor's "numba" is the only claimant: loaded, and refused
        assert not infos["numba"].available and "calls itself 'scipy'" in infos["numba"].reason
    ignored = infos["scipy (fake-impostor)"]
    assert not ignored.available and "fake-impostor" in ignored.origin
    assert "belongs to convkit's own backend" in ignored.reason and "convkit-core" in ignored.reason
    # Two other distributions claiming one name: neither wins, both are named.
    twin = infos["t-twin"]
    assert not twin.available
    assert "claimed by several distributions" in twin.reason
    assert "fake-impostor" in twin.reason and "fake-twin" in twin.reason
    with pytest.raises(convkit.BackendUnavailableError, match="claimed by several distributions"):
        who(backend="t-twin")
    with pytest.raises(convkit.UnknownBackendError):
        who(backend="scipy (fake-impostor)")
    if numba_is_own:
        assert "fake_impostor" not in sys.modules  # no colliding entry point was even imported
    logged = [record for record in caplog.records if record.name == "convkit"]
    assert any(
        "'scipy'" in record.getMessage() and "fake-impostor" in record.getMessage()
        for record in logged
    )
    assert any(
        "'t-twin'" in record.getMessage() and "fake-twin" in record.getMessage()
        for record in logged
    )
    assert all(record.levelname == "WARNING" for record in logged)


def test_info_shows_the_ignored_entry_point(colliding_plugins):
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "convkit", "info"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(colliding_plugins), *sys.path])},
    )
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"scipy \(fake-impostor\) +no: ignored: the name 'scipy' belongs", done.stdout
    ), done.stdout
    assert re.search(r"t-twin +no: the name 't-twin' is claimed by several", done.stdout), (
        done.stdout
    )
    assert "convkit: entry point 'scipy' of fake-impostor" in done.stderr


class Vandal(Backend):
    """Sets the writeable flag back and writes into its operands."""

    name = "t-vandal"

    def _vandalize(self, problem):
        for operand in problem.operands:
            operand.flags.writeable = True
            operand[...] = -1.0
        return np.zeros(problem.output_shape, problem.dtype)

    conv = convolve_nd = _vandalize


@pytest.mark.parametrize("register", [True, False])
def test_a_plugin_cannot_write_into_the_callers_arrays(register):
    vandal = Vandal()
    if register:
        convkit.register_backend(vandal)
    try:
        choice = "t-vandal" if register else vandal
        x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 1, 1))  # contiguous float64: no core copy
        convkit.conv2d(x, w, backend=choice)
        convkit.convolve_nd(x, w, backend=choice)
        with convkit.use_backend(choice):
            convkit.convolve_nd(x[0, 0], w[0, 0])
        assert (x == 1.0).all() and (w == 1.0).all()
    finally:
        if register:
            convkit.unregister_backend("t-vandal")


def test_convkits_own_backends_get_the_operands_without_a_copy():
    from convkit.plugin import normalize_convolve

    problem = normalize_convolve(np.ones(8), np.ones(3), "full", None)
    assert _selection.select_backend(problem, "scipy") is _discovery._registry.load("scipy").backend
    registered = Labelled("t-other", 1.0)
    assert _selection.select_backend(problem, registered) is not registered
