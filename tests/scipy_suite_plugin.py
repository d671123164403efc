"""A pytest plugin that runs SciPy's own tests of its convolutions against convkit.compat.

From any folder outside this repository (so that SciPy's conftest, with its ``xp``
fixture and markers, is the one in force)::

    PYTHONPATH=<repo>/tests python -m pytest -p scipy_suite_plugin --compat-backend numba \\
        --pyargs scipy.signal.tests.test_signaltools scipy.ndimage.tests.test_filters

The plugin keeps the tests of the functions convkit.compat replaces (every other test
of those modules is deselected), imports them with convkit.compat's functions in
``scipy.signal`` and ``scipy.ndimage`` (so the names they import and the functions their
parametrizations hold are convkit's), hands SciPy its own functions back, gives the test
modules stand-ins for the ``signal`` and ``ndimage`` modules whose attributes they call,
selects the backend with
``convkit.set_backend``, and marks the deliberate differences as strict xfails with their
reasons (docs/switching_from_scipy.rst lists them).  SciPy's tests run on NumPy arrays
only (the ``xp`` fixture's other array libraries are not installed here).
"""

from __future__ import annotations

import types

import pytest

SIGNAL_TESTS = "scipy.signal.tests.test_signaltools"
NDIMAGE_TESTS = "scipy.ndimage.tests.test_filters"

# The tests kept, by the start of their name within their module (class or function).
SIGNAL_SCOPE = (
    "TestConvolve::",
    "TestConvolve2d::",
    "TestFFTConvolve::",
    "TestOAConvolve::",
    "TestAllFreqConvolves::",
    "TestCorrelateReal::",
    "TestCorrelateComplex::",
    "TestCorrelate::",
    "TestCorrelate2d::",
    "test_convolve_longdtype_input",
    "test_choose_conv_method",
)
NDIMAGE_FUNCTIONS = ("correlate", "convolve", "uniform", "gauss")
# ndimage tests whose names match the above but test other functions.
NDIMAGE_OTHERS = ("laplace", "gradient_magnitude", "gaussian_kernel1d")

SIGNAL_NAMES = (
    "convolve",
    "correlate",
    "fftconvolve",
    "oaconvolve",
    "convolve2d",
    "correlate2d",
    "choose_conv_method",
)
NDIMAGE_NAMES = (
    "convolve",
    "correlate",
    "convolve1d",
    "correlate1d",
    "uniform_filter",
    "uniform_filter1d",
    "gaussian_filter",
    "gaussian_filter1d",
)

# Deliberate differences: test id (the part after "::" of the module) -> (backends on
# which it differs, reason, strict).  Strict xfails fail the run if the test passes;
# the four that compare two calls to the last bits on fftw are not strict, as whether
# FFTW's plans for the two calls differ depends on when its measurement ran.  FFT_BACKENDS compute convolve_nd through FFTs.
FFT_BACKENDS = frozenset({"scipy", "fftw"})
EVERY_BACKEND = frozenset({"scipy", "numba", "fftw"})
FFTW_PLANS = (
    "FFTW measures its plans on a shape's third use, so repeated calls may differ in the "
    "last bits (1e-15 here); ndimage's direct sums repeat bit for bit"
)
DELIBERATE: dict[str, tuple[frozenset[str], str, bool]] = {
    "TestFFTConvolve::test_fft_nan": (
        EVERY_BACKEND,
        "NaN and inf stay local: SciPy's FFT convolution makes the whole output NaN",
        True,
    ),
    "test_gaussian_truncate": (
        FFT_BACKENDS,
        "FFT methods leave rounding noise (1e-20 here) where ndimage's direct sum is "
        "exactly 0, so counting the outputs > 0 counts them too",
        True,
    ),
    "TestConvolve2d::test_consistency_convolve_funcs": (
        frozenset({"fftw"}),
        "rounding differs from NumPy's direct sum: convkit gives exactly 0 where "
        "numpy.convolve gives -1.8e-15, and the test's relative tolerance of that 0 is 0",
        True,
    ),
    "TestNdimageFilters::test_gauss03": (
        frozenset({"numba", "fftw"}),
        "float32 input into a float32 output sums in float32 (ndimage sums in double): the "
        "test's total over 10^4 outputs drifts by more than its +-1.5",
        True,
    ),
    "TestConvolve::test_convolve_method[": (
        frozenset({"fftw"}),
        "float32 sums near zero round by FFTW's plan: method='fft' and method='direct' "
        "(both FFTW here) differ by up to 1.2e-6 where the test allows 1e-6 absolute, "
        "well inside convkit's bound for 100-term float32 sums; whether they do depends on "
        "when FFTW's measurement ran",
        False,
    ),
    "TestThreading::test_correlate1d": (frozenset({"fftw"}), FFTW_PLANS, False),
    "TestNdimageFilters::test_gauss_memory_overlap": (frozenset({"fftw"}), FFTW_PLANS, False),
    "TestThreading::test_correlate[": (frozenset({"fftw"}), FFTW_PLANS, False),
}


def pytest_addoption(parser):
    parser.addoption(
        "--compat-backend",
        default=None,
        help="the convkit backend to run SciPy's tests on (default: convkit's own choice)",
    )


def _standing_in(original, replacements, names):
    """A module: ``names`` from ``replacements``, everything else from ``original``."""
    stand_in = types.ModuleType(original.__name__)
    stand_in.__dict__.update(vars(original))
    for name in names:
        setattr(stand_in, name, getattr(replacements, name))
    return stand_in


def pytest_configure(config):
    """Import SciPy's test modules with convkit.compat's functions in scipy.signal and
    scipy.ndimage (the names they import and the functions their parametrizations hold),
    then give SciPy its functions back (convkit's reference backend calls them) and give
    the test modules stand-ins for the ``signal`` and ``ndimage`` modules they call."""
    import importlib
    import sys

    import scipy.ndimage
    import scipy.signal
    from scipy._lib._array_api import xp_capabilities_table

    import convkit
    from convkit.compat import ndimage, signal

    if SIGNAL_TESTS in sys.modules or NDIMAGE_TESTS in sys.modules:
        raise pytest.UsageError("scipy_suite_plugin must load before SciPy's test modules")
    replaced = [
        (scipy.signal, signal, SIGNAL_NAMES),
        (scipy.ndimage, ndimage, NDIMAGE_NAMES),
    ]
    originals = [
        (module, name, getattr(module, name)) for module, _, names in replaced for name in names
    ]
    try:
        for module, replacements, names in replaced:
            for name in names:
                original, replacement = getattr(module, name), getattr(replacements, name)
                setattr(module, name, replacement)
                # The tests' array-library marks are looked up by function: SciPy's, for NumPy.
                if original in xp_capabilities_table:
                    xp_capabilities_table[replacement] = xp_capabilities_table[original]
        signal_tests = importlib.import_module(SIGNAL_TESTS)
        ndimage_tests = importlib.import_module(NDIMAGE_TESTS)
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
    signal_tests.signal = _standing_in(scipy.signal, signal, SIGNAL_NAMES)
    ndimage_tests.ndimage = _standing_in(scipy.ndimage, ndimage, NDIMAGE_NAMES)
    config._compat_backend = config.getoption("--compat-backend")
    convkit.set_backend(config._compat_backend)


def _in_scope(item) -> tuple[bool, str]:
    """Whether a test is one of the replaced functions', and its id within its module."""
    name = item.nodeid.partition("::")[2]
    if item.path.name == "test_signaltools.py":
        return name.startswith(SIGNAL_SCOPE), name
    if item.path.name == "test_filters.py":
        lowered = name.lower()
        wanted = any(word in lowered for word in NDIMAGE_FUNCTIONS)
        return wanted and not any(word in lowered for word in NDIMAGE_OTHERS), name
    return False, name


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        in_scope, name = _in_scope(item)
        if not in_scope:
            dropped.append(item)
            continue
        kept.append(item)
        for prefix, (backends, reason, strict) in DELIBERATE.items():
            if name.startswith(prefix) and config._compat_backend in backends:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=strict))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
