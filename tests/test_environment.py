"""Every CONVKIT_* variable goes through one strict parser with one clear message."""

import os
import subprocess
import sys

import numpy as np
import pytest

import convkit

BAD_VALUES = [
    ("CONVKIT_NUM_THREADS", "many", convkit.get_num_threads),
    ("CONVKIT_NUM_THREADS", "0", convkit.get_num_threads),
    ("CONVKIT_NUM_THREADS", "2.5", convkit.get_num_threads),
    ("CONVKIT_NUM_THREADS", "-3", convkit.get_num_threads),
    ("CONVKIT_NUM_THREADS", "99999999999999999999", convkit.get_num_threads),
    ("CONVKIT_MEMORY_LIMIT", "lots", convkit.get_memory_limit),
    ("CONVKIT_MEMORY_LIMIT", "inf", convkit.get_memory_limit),
    ("CONVKIT_MEMORY_LIMIT", "nan", convkit.get_memory_limit),
    ("CONVKIT_MEMORY_LIMIT", "-1G", convkit.get_memory_limit),
    ("CONVKIT_MEMORY_LIMIT", "0", convkit.get_memory_limit),
    ("CONVKIT_MEMORY_LIMIT", "1e400", convkit.get_memory_limit),
    ("CONVKIT_MEMORY_LIMIT", "8X", convkit.get_memory_limit),
    ("CONVKIT_AUTOTUNE", "maybe", convkit.get_autotune),
    ("CONVKIT_AUTOTUNE", "2", convkit.get_autotune),
]


@pytest.mark.parametrize("name, value, read", BAD_VALUES)
def test_a_bad_value_names_the_variable_the_value_and_what_is_accepted(
    monkeypatch, name, value, read
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as caught:
        read()
    message = str(caught.value)
    assert f"environment variable {name}={value!r} is not valid: expected " in message, message
    assert "unset it" in message


@pytest.mark.parametrize(
    "name, value, read, expected",
    [
        ("CONVKIT_NUM_THREADS", " 3 ", convkit.get_num_threads, 3),
        ("CONVKIT_MEMORY_LIMIT", "8G", convkit.get_memory_limit, 8 * 2**30),
        ("CONVKIT_MEMORY_LIMIT", "512MiB", convkit.get_memory_limit, 512 * 2**20),
        ("CONVKIT_MEMORY_LIMIT", "1.5g", convkit.get_memory_limit, 3 * 2**29),
        ("CONVKIT_MEMORY_LIMIT", "1e9", convkit.get_memory_limit, 10**9),
        ("CONVKIT_MEMORY_LIMIT", "4096", convkit.get_memory_limit, 4096),
        ("CONVKIT_AUTOTUNE", "YES", convkit.get_autotune, True),
        ("CONVKIT_AUTOTUNE", "off", convkit.get_autotune, False),
        ("CONVKIT_AUTOTUNE", "", convkit.get_autotune, False),
    ],
)
def test_good_values(monkeypatch, name, value, read, expected):
    monkeypatch.setenv(name, value)
    assert read() == expected


def test_a_bad_variable_is_not_blamed_on_the_backend(monkeypatch):
    monkeypatch.setenv("CONVKIT_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="CONVKIT_NUM_THREADS='many' is not valid") as caught:
        convkit.convolve_nd(np.ones(3), np.ones(2), backend="scipy")
    assert not isinstance(caught.value, convkit.BackendError)
    monkeypatch.setenv("CONVKIT_NUM_THREADS", "2")
    # Nothing was cached: once the variable is fixed, the backend runs.
    assert convkit.convolve_nd(np.ones(3), np.ones(2), backend="scipy").shape == (4,)
    assert {info.name: info for info in convkit.list_backends()}["scipy"].available


def test_backend_variable_is_named(monkeypatch):
    monkeypatch.setenv("CONVKIT_BACKEND", "no-such-engine")
    with pytest.raises(
        convkit.UnknownBackendError,
        match="environment variable CONVKIT_BACKEND='no-such-engine': unknown",
    ):
        convkit.convolve_nd(np.ones(3), np.ones(2))


def test_settings_take_numpy_integers_and_are_bounded():
    convkit.set_num_threads(np.int64(2))
    assert convkit.get_num_threads() == 2
    convkit.set_memory_limit(np.uint32(2**30))
    assert convkit.get_memory_limit() == 2**30
    with pytest.raises(
        ValueError, match="threads must be at most 32768, got 1000000000000000000000000000000"
    ):
        convkit.set_num_threads(10**30)
    with pytest.raises(TypeError, match="threads must be a positive int, got True"):
        convkit.set_num_threads(True)


def _cli(*arguments, **variables):
    return subprocess.run(
        [sys.executable, "-m", "convkit", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, **variables),
        check=False,
    )


def test_info_with_bad_variables_reports_them_without_a_traceback():
    done = _cli("info", CONVKIT_NUM_THREADS="many", CONVKIT_MEMORY_LIMIT="inf")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "error: environment variable CONVKIT_NUM_THREADS='many' is not valid" in done.stdout
    assert "error: environment variable CONVKIT_MEMORY_LIMIT='inf' is not valid" in done.stdout
    assert "scipy" in done.stdout  # the backend table is still printed


def test_check_with_a_bad_variable_stops_at_once():
    done = _cli("check", "scipy", CONVKIT_MEMORY_LIMIT="lots")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "error: environment variable CONVKIT_MEMORY_LIMIT='lots' is not valid" in done.stderr
    assert "Traceback" not in done.stderr
    assert "fail" not in done.stdout.lower()
