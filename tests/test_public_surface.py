"""The conformance kit and every backend's tests use only convkit's public API."""

import re
from pathlib import Path

import pytest

import convkit
from convkit.plugin import Availability, Backend, resolve_backend
from convkit.testing import resolve_backend as kit_resolve_backend

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_IMPORT = re.compile(r"^\s*(from|import)\s+convkit\._", re.MULTILINE)


class _Elsewhere(Backend):
    name = "t-elsewhere"

    def availability(self):
        return Availability(False, "needs a device this machine lacks")

    def convolve_nd(self, problem):
        raise AssertionError("never called")


def test_the_kit_and_backend_tests_import_no_private_convkit_module():
    files = [
        *(ROOT / "convkit" / "testing").glob("*.py"),
        *(ROOT / "backends").glob("*/tests/*.py"),
    ]
    assert len(files) > 10
    offenders = [
        str(path.relative_to(ROOT)) for path in files if PRIVATE_IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_resolve_backend_gives_the_loaded_backend_by_name():
    assert kit_resolve_backend is resolve_backend
    scipy = resolve_backend("scipy")
    assert scipy.name == "scipy" and resolve_backend(scipy) is scipy


def test_resolve_backend_says_why_a_backend_cannot_be_had():
    with pytest.raises(convkit.UnknownBackendError, match="'t-nowhere'"):
        resolve_backend("t-nowhere")
    convkit.register_backend(_Elsewhere())
    try:
        with pytest.raises(
            convkit.BackendUnavailableError,
            match="'t-elsewhere' is unavailable: needs a device this machine lacks",
        ):
            resolve_backend("t-elsewhere")
    finally:
        convkit.unregister_backend("t-elsewhere")
