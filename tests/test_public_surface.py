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


def test_the_gradients_are_public_with_theanos_argument_names():
    import inspect

    expected = {
        "conv_grad_input": "(output_grad, filters, input_shape, border_mode='valid', subsample=1, "
        "filter_flip=True, filter_dilation=1, num_groups=1, *, boundary='fill', backend=None)",
        "conv_grad_filters": "(input, output_grad, filter_shape, border_mode='valid', subsample=1, "
        "filter_flip=True, filter_dilation=1, num_groups=1, *, boundary='fill', backend=None)",
        "conv_transpose": "(input, filters, output_shape, border_mode='valid', input_dilation=1, "
        "filter_flip=True, filter_dilation=1, num_groups=1, *, boundary='fill', backend=None)",
    }
    for name, signature in expected.items():
        assert name in convkit.__all__
        function = getattr(convkit, name)
        parameters = inspect.signature(function).replace(return_annotation=inspect.Signature.empty)
        plain = parameters.replace(
            parameters=[
                p.replace(annotation=inspect.Parameter.empty)
                for p in parameters.parameters.values()
            ]
        )
        assert str(plain) == signature, name
    from convkit import plugin

    for name in (
        "ConvGradInputProblem",
        "ConvGradFiltersProblem",
        "normalize_conv_grad_input",
        "normalize_conv_grad_filters",
        "lowered_problems",
    ):
        assert name in plugin.__all__
