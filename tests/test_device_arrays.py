"""The core's handling of GPU arrays, checked with stand-ins that expose __cuda_array_interface__.

The data of a device array is never read by the core: shapes and dtypes come from the
interface, and only a backend that declares ``device_arrays`` receives the problem.
"""

import numpy as np
import pytest

import convkit
from convkit.plugin import Backend, Capabilities, normalize_conv, normalize_convolve


class FakeDeviceArray:
    """Only metadata, as a CuPy array would offer: any read of the data would fail."""

    def __init__(self, shape, dtype="float32", strides=None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.__cuda_array_interface__ = {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "strides": strides,
            "data": (0, False),
            "version": 3,
        }

    def __array__(self, *args, **kwargs):
        raise AssertionError("the core must not copy a device array to the host")


def test_a_device_problem_carries_the_arrays_unchanged_and_unflipped():
    data, filters = FakeDeviceArray((2, 4, 8, 8)), FakeDeviceArray((6, 2, 3, 3))
    problem = normalize_conv(data, filters, "half", 2, True, 1, 2, 2, "conv2d")
    assert problem.on_device and problem.input is data and problem.filters is filters
    assert problem.filter_flip and problem.output_shape == (2, 6, 4, 4)


def test_valid_mode_swaps_device_operands_as_scipy_does():
    small, large = FakeDeviceArray((3,), "float64"), FakeDeviceArray((10,), "float64")
    problem = normalize_convolve(small, large, "valid", None)
    assert problem.in1 is large and problem.in2 is small and problem.output_shape == (8,)


def test_host_backends_refuse_device_problems_with_the_fix():
    data, filters = FakeDeviceArray((1, 1, 5, 5)), FakeDeviceArray((1, 1, 3, 3))
    with pytest.raises(convkit.BackendUnavailableError, match="does not take device .GPU. arrays"):
        convkit.conv2d(data, filters, backend="scipy")


def test_a_backend_that_declares_device_arrays_receives_them():
    class Echo(Backend):
        name = "test-device-echo"
        capabilities = Capabilities(device_arrays=True)

        def conv(self, problem):
            return np.zeros(problem.output_shape, dtype=problem.dtype)

    convkit.register_backend(Echo())
    try:
        result = convkit.conv2d(
            FakeDeviceArray((1, 1, 5, 5)), FakeDeviceArray((2, 1, 3, 3)), backend="test-device-echo"
        )
        assert result.shape == (1, 2, 3, 3)
    finally:
        convkit.unregister_backend("test-device-echo")


@pytest.mark.parametrize(
    ("first", "second", "error", "message"),
    [
        (
            FakeDeviceArray((1, 1, 5, 5)),
            np.ones((1, 1, 3, 3), np.float32),
            TypeError,
            "input is a device .GPU. array but filters is not",
        ),
        (
            FakeDeviceArray((1, 1, 5, 5), "float16"),
            FakeDeviceArray((1, 1, 3, 3), "float16"),
            TypeError,
            "convkit does not cast device arrays",
        ),
        (
            FakeDeviceArray((1, 1, 5, 5), strides=(100, 100, 20, 8)),
            FakeDeviceArray((1, 1, 3, 3)),
            TypeError,
            "non-contiguous device array",
        ),
        (
            FakeDeviceArray((0, 1, 5, 5)),
            FakeDeviceArray((1, 1, 3, 3)),
            ValueError,
            "empty or 0-d device array",
        ),
        (
            FakeDeviceArray((1, 3, 5, 5)),
            FakeDeviceArray((1, 1, 3, 3)),
            ValueError,
            "input has 3 channels",
        ),
    ],
)
def test_bad_device_operands_are_explained(first, second, error, message):
    with pytest.raises(error, match=message):
        normalize_conv(first, second, "valid", 1, True, 1, 1, 2, "conv2d")


def test_contiguous_strides_in_the_interface_are_accepted():
    data = FakeDeviceArray((1, 1, 5, 5), strides=(100, 100, 20, 4))
    problem = normalize_conv(
        data, FakeDeviceArray((1, 1, 3, 3)), "valid", 1, True, 1, 1, 2, "conv2d"
    )
    assert problem.on_device


def test_a_device_result_whose_dtype_is_not_numpys_is_checked_by_its_interface():
    """A torch tensor's ``dtype`` is ``torch.float32``, which NumPy cannot read."""

    class TorchLikeResult(FakeDeviceArray):
        def __init__(self, shape, dtype):
            super().__init__(shape, dtype)
            self.dtype = f"torch.{np.dtype(dtype).name}"

    class Echo(Backend):
        name = "test-device-torch-echo"
        capabilities = Capabilities(device_arrays=True)

        def __init__(self, dtype):
            self.result_dtype = dtype

        def conv(self, problem):
            return TorchLikeResult(problem.output_shape, self.result_dtype)

    data, filters = FakeDeviceArray((1, 1, 5, 5)), FakeDeviceArray((2, 1, 3, 3))
    convkit.register_backend(Echo("float32"))
    try:
        assert convkit.conv2d(data, filters, backend="test-device-torch-echo").shape == (1, 2, 3, 3)
    finally:
        convkit.unregister_backend("test-device-torch-echo")
    convkit.register_backend(Echo("float64"))
    try:
        with pytest.raises(convkit.BackendResultError, match="returned dtype"):
            convkit.conv2d(data, filters, backend="test-device-torch-echo")
    finally:
        convkit.unregister_backend("test-device-torch-echo")
