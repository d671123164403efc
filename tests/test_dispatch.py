"""Dispatch that can be trusted and explains itself.

What a backend offers comes from what it implements; each decision is
logged; ``convkit.explain`` shows it without running; autotune choices
persist across processes and a bad cache file is ignored with a warning.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import convkit
from convkit import _discovery
from convkit.plugin import Backend, Capabilities

X = np.ones((1, 1, 5, 5))
W = np.ones((1, 1, 3, 3))


class OnlyND(Backend):
    name = "only-nd"

    def convolve_nd(self, problem):
        return np.full(problem.output_shape, 7.0, problem.dtype)


@pytest.fixture
def only_nd():
    convkit.register_backend(OnlyND())
    yield
    convkit.unregister_backend("only-nd")


# The plugin contract: offered operations are implemented ones.


def test_the_issue_example(only_nd):
    expected = convkit.conv2d(X, W, backend="scipy")
    with convkit.use_backend("only-nd,scipy"):
        np.testing.assert_allclose(convkit.conv2d(X, W), expected)  # falls through to scipy
        assert convkit.convolve_nd(np.ones(3), np.ones(2))[0] == 7.0  # what it does implement
    with pytest.raises(convkit.BackendError, match="'only-nd'.*does not implement conv "):
        convkit.conv2d(X, W, backend="only-nd")
    info = {b.name: b for b in convkit.list_backends()}["only-nd"]
    assert info.available and info.operations == ("convolve_nd",)


def test_the_conformance_kit_skips_an_unimplemented_operation():
    from convkit.testing import check_case, generate_cases

    case = next(case for case in generate_cases("fast") if case.operation == "conv")
    result = check_case(OnlyND(), case)
    assert result.status == "skip" and "does not implement conv" in result.message


def test_auto_never_offers_an_unimplemented_operation(only_nd):
    explanation = convkit.explain("conv2d", X, W)
    (candidate,) = [c for c in explanation.candidates if c.name == "only-nd"]
    assert "does not implement conv" in candidate.reason
    assert explanation.backend != "only-nd"


def test_a_backend_object_is_held_to_the_contract():
    with pytest.raises(convkit.BackendUnavailableError, match="'only-nd'.*does not implement conv"):
        convkit.conv2d(X, W, backend=OnlyND())


class DeclaresWhatItLacks(Backend):
    name = "t-liar-caps"
    capabilities = Capabilities(operations=frozenset({"conv", "convolve_nd"}))

    def convolve_nd(self, problem):
        return np.zeros(problem.output_shape, problem.dtype)


def test_register_refuses_a_declared_but_unimplemented_operation():
    with pytest.raises(
        TypeError,
        match="'t-liar-caps' declares conv in capabilities.operations but does not implement it",
    ):
        convkit.register_backend(DeclaresWhatItLacks())
    assert "t-liar-caps" not in [b.name for b in convkit.list_backends()]
    with pytest.raises(convkit.BackendUnavailableError, match="declares conv"):
        convkit.convolve_nd(np.ones(3), np.ones(2), backend=DeclaresWhatItLacks())


def test_declared_operations_narrow_what_is_offered():
    class Narrow(Backend):
        name = "t-narrow"
        capabilities = Capabilities(operations=frozenset({"conv"}))

        def conv(self, problem):
            return np.zeros(problem.output_shape, problem.dtype)

        def convolve_nd(self, problem):
            return np.zeros(problem.output_shape, problem.dtype)

    assert _discovery.supported_operations(Narrow()) == {"conv"}
    assert _discovery.contract_violation(Narrow()) is None


@pytest.fixture
def lying_plugin(tmp_path, monkeypatch):
    folder = tmp_path / "fake_liar-0.1.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-liar\nVersion: 0.1\n")
    (folder / "entry_points.txt").write_text("[convkit.backends]\nt-liar-ep = fake_liar:Liar\n")
    (tmp_path / "fake_liar.py").write_text(
        textwrap.dedent("""\
        import numpy as np
        from convkit.plugin import Backend, Capabilities

        class Liar(Backend):
            name = "t-liar-ep"
            capabilities = Capabilities(operations=frozenset({"conv", "convolve_nd"}))
            def convolve_nd(self, problem):
                return np.zeros(problem.output_shape, problem.dtype)
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _discovery._registry.forget_discovery()
    yield
    monkeypatch.undo()
    _discovery._registry.forget_discovery()
    sys.modules.pop("fake_liar", None)


def test_an_entry_point_that_declares_what_it_lacks_is_unavailable(lying_plugin, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="convkit"),
        pytest.warns(RuntimeWarning, match="t-liar-ep"),
    ):
        info = {b.name: b for b in convkit.list_backends()}["t-liar-ep"]
    assert not info.available
    assert "declares conv in capabilities.operations but does not implement it" in info.reason
    assert any(
        record.levelno == logging.WARNING
        and "t-liar-ep" in record.getMessage()
        and "failed to load" in record.getMessage()
        for record in caplog.records
    )


# The log.


def _decisions(caplog):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "convkit" and r.levelno == logging.DEBUG and "runs on" in r.getMessage()
    ]


def test_each_call_logs_its_backend_and_rule(only_nd, monkeypatch, caplog):
    monkeypatch.delenv("CONVKIT_BACKEND", raising=False)
    with caplog.at_level(logging.DEBUG, logger="convkit"):
        convkit.conv2d(X, W, backend="scipy")
        with convkit.use_backend("only-nd,scipy"):
            convkit.conv2d(X, W)
        convkit.set_backend("scipy")
        try:
            convkit.conv2d(X, W)
        finally:
            convkit.set_backend(None)
        monkeypatch.setenv("CONVKIT_BACKEND", "scipy")
        convkit.conv2d(X, W)
        monkeypatch.delenv("CONVKIT_BACKEND")
        convkit.conv2d(X, W)
    argument, context, process, environment, auto = _decisions(caplog)
    assert "'scipy', chosen by backend= argument" in argument
    assert "chosen by convkit.use_backend('only-nd,scipy')" in context
    assert "only-nd: does not implement conv" in context  # and why it was skipped
    assert "chosen by convkit.set_backend('scipy')" in process
    assert "chosen by CONVKIT_BACKEND='scipy'" in environment
    assert "chosen by auto (" in auto and "scipy: " in auto and " s" in auto  # the estimates


# explain.


def test_explain_shows_the_decision_without_running(only_nd):
    calls = []

    class Counting(OnlyND):
        name = "t-counting"

        def convolve_nd(self, problem):
            calls.append(problem)
            return super().convolve_nd(problem)

    explanation = convkit.explain(
        convkit.convolve_nd, np.ones(8), np.ones(3), mode="same", backend=Counting()
    )
    assert calls == [] and explanation.backend == "t-counting"
    assert explanation.rule == "backend= argument"
    with convkit.use_backend("only-nd,scipy"):
        explanation = convkit.explain("conv2d", X, W, border_mode="half")
    assert explanation.backend == "scipy" and explanation.rule.startswith("convkit.use_backend")
    assert "only-nd: does not implement conv" in explanation.detail
    text = str(explanation)
    assert text.splitlines()[0] == "conv2d: backend scipy, chosen by " + explanation.rule
    assert "* scipy" in text and "no: does not implement conv" in text
    names = {c.name for c in explanation.candidates}
    assert {"scipy", "only-nd"} <= names


def test_explain_reports_a_failing_choice_and_checks_arguments(only_nd):
    explanation = convkit.explain("conv2d", X, W, backend="only-nd")
    assert explanation.backend is None
    assert "BackendUnavailableError" in explanation.detail and "only-nd" in explanation.detail
    with pytest.raises(ValueError, match="channels"):
        convkit.explain("conv2d", X, np.ones((1, 2, 3, 3)))
    with pytest.raises(TypeError, match="explain: function must be one of"):
        convkit.explain(np.convolve, X, W)
    assert convkit.explain("convolve_nd", np.ones(0), np.ones(2)).rule == "core"


def test_explain_says_whether_autotune_would_time(pair_for_autotune):
    convkit.set_autotune(True)
    before = convkit.explain("convolve_nd", np.ones(10), np.ones(3))
    assert "would time" in before.detail and before.autotune
    assert pair_for_autotune[0].calls == pair_for_autotune[1].calls == 0  # explain timed nothing
    convkit.convolve_nd(np.ones(10), np.ones(3))
    after = convkit.explain("convolve_nd", np.ones(10), np.ones(3))
    assert "cached" in after.detail and after.backend == "t-fast-honest"


# The persistent autotune cache.


class _Timed(Backend):
    def __init__(self, estimate, delay):
        self.estimate, self.delay, self.calls = estimate, delay, 0

    def estimate_seconds(self, problem):
        return self.estimate

    def convolve_nd(self, problem):
        import time

        self.calls += 1
        time.sleep(self.delay)
        full = np.convolve(problem.in1, problem.in2)
        return full[problem.output_slices].astype(problem.dtype)


class SlowLiar(_Timed):
    name = "t-slow-liar"
    capabilities = Capabilities(max_spatial_dims=1)


class FastHonest(_Timed):
    name = "t-fast-honest"
    capabilities = Capabilities(max_spatial_dims=1)


@pytest.fixture
def pair_for_autotune(monkeypatch):
    monkeypatch.delenv("CONVKIT_AUTOTUNE_CACHE", raising=False)
    monkeypatch.delenv("CONVKIT_BACKEND", raising=False)
    liar, honest = (
        SlowLiar(1e-15, 0.02),
        FastHonest(5e-15, 0.0),
    )  # estimates below any real engine's
    convkit.register_backend(liar)
    convkit.register_backend(honest)
    convkit.set_autotune(None)
    yield liar, honest
    convkit.unregister_backend("t-slow-liar")
    convkit.unregister_backend("t-fast-honest")
    convkit.set_autotune(None)


def test_save_and_load_skip_the_timing(pair_for_autotune, tmp_path):
    liar, honest = pair_for_autotune
    convkit.set_autotune(True)
    convkit.convolve_nd(np.ones(10), np.ones(3))
    assert liar.calls == 2  # timed
    path = tmp_path / "tuned.json"
    assert convkit.save_autotune(path) == 1
    convkit.set_autotune(True)  # forgets every choice
    assert convkit.load_autotune(path) == 1
    convkit.convolve_nd(np.ones(10), np.ones(3))
    assert liar.calls == 2 and honest.calls == 4  # not timed again: the saved choice ran
    with pytest.raises(FileNotFoundError, match="save_autotune"):
        convkit.load_autotune(tmp_path / "missing.json")


def _saved_document(pair, tmp_path):
    convkit.set_autotune(True)
    convkit.convolve_nd(np.ones(10), np.ones(3))
    path = tmp_path / "tuned.json"
    convkit.save_autotune(path)
    return path, json.loads(path.read_text())


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda document: "{not json", "not a convkit autotune file"),
        (lambda document: b"\xff\xfe garbage", "not a convkit autotune file"),
        (lambda document: [1, 2], "not a convkit autotune file"),
        (lambda document: {**document, "version": 99}, "format version 99"),
        (
            lambda document: {**document, "machine": {**document["machine"], "cpus": -1}},
            "another machine",
        ),
        (
            lambda document: {
                **document,
                "choices": [{"signature": [{"a": 1}], "runnable": [], "chosen": "x"}],
            },
            "malformed",
        ),
        (
            lambda document: {
                **document,
                "choices": [{**document["choices"][0], "chosen": "scipy-x"}],
            },
            "malformed",
        ),
    ],
)
def test_a_corrupt_or_foreign_file_is_ignored_with_a_warning(
    pair_for_autotune, tmp_path, spoil, message
):
    liar, _ = pair_for_autotune
    path, document = _saved_document(pair_for_autotune, tmp_path)
    spoiled = spoil(document)
    if isinstance(spoiled, bytes):
        path.write_bytes(spoiled)
    else:
        path.write_text(spoiled if isinstance(spoiled, str) else json.dumps(spoiled))
    convkit.set_autotune(True)
    with pytest.warns(RuntimeWarning, match=message):
        assert convkit.load_autotune(path) == 0
    convkit.convolve_nd(np.ones(10), np.ones(3))
    assert liar.calls == 4  # nothing was taken from the file: timed again


def test_a_choice_for_other_backend_versions_is_not_used(pair_for_autotune, tmp_path):
    liar, _ = pair_for_autotune
    path, document = _saved_document(pair_for_autotune, tmp_path)
    document["choices"][0]["runnable"] = [
        [name, "0.0-other"] for name, _ in document["choices"][0]["runnable"]
    ]
    path.write_text(json.dumps(document))
    convkit.set_autotune(True)
    assert convkit.load_autotune(path) == 1
    convkit.convolve_nd(np.ones(10), np.ones(3))
    assert liar.calls == 4  # other versions: timed again


RESTART = textwrap.dedent("""\
    import logging, time
    import numpy as np
    import convkit
    from convkit.plugin import Backend, Capabilities

    class Timed(Backend):
        capabilities = Capabilities(max_spatial_dims=1)
        def __init__(self, name, estimate, delay):
            self.name, self.estimate, self.delay, self.calls = name, estimate, delay, 0
        def estimate_seconds(self, problem):
            return self.estimate
        def convolve_nd(self, problem):
            self.calls += 1
            time.sleep(self.delay)
            return np.convolve(problem.in1, problem.in2)[problem.output_slices]

    liar, honest = Timed("t-slow-liar", 1e-15, 0.02), Timed("t-fast-honest", 5e-15, 0.0)
    convkit.register_backend(liar)
    convkit.register_backend(honest)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("convkit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    convkit.convolve_nd(np.ones(10), np.ones(3))
    timed = sum("autotune timed" in record.getMessage() for record in records)
    print(liar.calls, honest.calls, timed)
    """)


@pytest.mark.slow
def test_a_tuned_choice_survives_a_process_restart(tmp_path):
    environment = {
        **os.environ,
        "CONVKIT_AUTOTUNE": "1",
        "CONVKIT_AUTOTUNE_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    environment.pop("CONVKIT_BACKEND", None)
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", RESTART],
            capture_output=True,
            text=True,
            check=False,
            env=environment,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout.split())
    assert runs[0] == ["2", "3", "1"]  # timed: a warm-up and a timed run each, then the answer
    assert runs[1] == ["0", "1", "0"]  # read from the directory: no timing, the fast one ran
    assert len(list((tmp_path / "cache").glob("autotune-v1-*.json"))) == 1


def test_a_corrupt_cache_directory_file_is_ignored(pair_for_autotune, tmp_path, monkeypatch):
    liar, _ = pair_for_autotune
    directory = tmp_path / "cache"
    monkeypatch.setenv("CONVKIT_AUTOTUNE_CACHE", str(directory))
    convkit.set_autotune(True)
    convkit.convolve_nd(np.ones(10), np.ones(3))
    (written,) = directory.glob("*.json")
    written.write_text("{truncated")
    convkit.set_autotune(True)
    with pytest.warns(RuntimeWarning, match="ignoring the autotune file"):
        convkit.convolve_nd(np.ones(10), np.ones(3))
    assert liar.calls == 4  # timed again, and the file rewritten whole
    assert json.loads(written.read_text())["format"] == "convkit-autotune"


def test_the_cache_variable_must_name_a_directory(tmp_path, monkeypatch):
    file = tmp_path / "a-file"
    file.write_text("")
    monkeypatch.setenv("CONVKIT_AUTOTUNE_CACHE", str(file))
    convkit.set_autotune(None)
    with pytest.raises(ValueError, match="CONVKIT_AUTOTUNE_CACHE=.*a directory"):
        convkit.convolve_nd(np.ones(3), np.ones(2))


def test_the_core_names_no_plugin():
    import convkit as package

    root = os.path.dirname(package.__file__)
    offenders = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py") and name != "_cli.py":  # the CLI's demo may name engines
                text = open(os.path.join(folder, name), encoding="utf-8").read()
                for line_number, line in enumerate(text.splitlines(), 1):
                    if "backend='cuda'" in line or "convkit-numba, or" in line:
                        offenders.append(f"{name}:{line_number}: {line.strip()}")
    assert offenders == []
