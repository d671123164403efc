"""The benchmark workloads: the issues' targets, each with a tiny --quick twin."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One benchmark problem.

    ``kind`` is "conv" (CNN layer, arguments of convkit.conv), "convolve_nd"
    (arguments of convkit.convolve_nd), or "conv_grad_input" /
    "conv_grad_filters" (a gradient of the conv ``forward``; ``shapes`` are
    the call's two operands, ``params`` its other arguments).
    """

    name: str
    kind: str
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    dtype: str
    params: dict = field(default_factory=dict)
    target: str = ""
    missing: float = 0.0
    forward: Workload | None = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Standard normal operands; with ``missing``, that fraction of in1 is NaN and the
        kernel is |standard normal| (a smoothing kernel, what gaps are interpolated with)."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        first, second = (
            rng.standard_normal(shape, dtype=np.float64).astype(self.dtype) for shape in self.shapes
        )
        if self.missing:
            first[rng.random(first.shape) < self.missing] = np.nan
            second = np.abs(second)
        return first, second

    def call(self, convkit, first, second, backend):
        if self.kind == "conv":
            return convkit.conv(first, second, backend=backend, **self.params)
        if self.kind in GRADIENTS:
            return getattr(convkit, self.kind)(first, second, backend=backend, **self.params)
        return convkit.convolve_nd(first, second, backend=backend, **self.params)

    def problem(self):
        from convkit.plugin import (
            normalize_conv,
            normalize_conv_grad_filters,
            normalize_conv_grad_input,
            normalize_convolve,
        )

        first, second = (np.empty(shape, self.dtype) for shape in self.shapes)
        if self.kind == "conv_grad_input":
            return normalize_conv_grad_input(first, second, **self.params)
        if self.kind == "conv_grad_filters":
            return normalize_conv_grad_filters(first, second, **self.params)
        if self.kind == "conv":
            p = {
                "border_mode": "valid",
                "subsample": 1,
                "filter_flip": True,
                "filter_dilation": 1,
                "num_groups": 1,
                **self.params,
            }
            return normalize_conv(
                first,
                second,
                p["border_mode"],
                p["subsample"],
                p["filter_flip"],
                p["filter_dilation"],
                p["num_groups"],
                None,
                "conv",
            )
        return normalize_convolve(
            first, second, self.params.get("mode", "full"), self.params.get("axes")
        )

    @property
    def flops(self) -> int:
        """Floating-point operations of the direct definition (2 per multiply-add)."""
        return 2 * self.problem().multiply_adds

    @property
    def bytes(self) -> int:
        """Bytes the inputs and the output occupy (the least any method moves)."""
        problem = self.problem()
        itemsize = np.dtype(self.dtype).itemsize
        return itemsize * (
            sum(math.prod(shape) for shape in self.shapes) + math.prod(problem.output_shape)
        )


GRADIENTS = ("conv_grad_input", "conv_grad_filters")


def gradients(forward: Workload) -> list[Workload]:
    """The two gradient rows of a conv row: ``grad_input NAME`` and ``grad_filters NAME``."""
    from convkit.plugin import conv_output_shape

    input_shape, filter_shape = forward.shapes
    params = forward.params
    spatial = conv_output_shape(
        input_shape[2:],
        filter_shape[2:],
        params.get("border_mode", "valid"),
        params.get("subsample", 1),
        params.get("filter_dilation", 1),
    )
    output_shape = (input_shape[0], filter_shape[0], *spatial)
    layer = forward.name.replace(" conv ", " ", 1)
    target = "numba <= 1.5x torch's time; numba-lowered <= 3x numba's"
    return [
        Workload(
            f"grad_input {layer}",
            "conv_grad_input",
            (output_shape, filter_shape),
            forward.dtype,
            {"input_shape": input_shape, **params},
            target,
            forward=forward,
        ),
        Workload(
            f"grad_filters {layer}",
            "conv_grad_filters",
            (input_shape, output_shape),
            forward.dtype,
            {"filter_shape": filter_shape, **params},
            target,
            forward=forward,
        ),
    ]


FULL = [
    Workload(
        "C2 conv N8 C64 56x56 F64 3x3 half",
        "conv",
        ((8, 64, 56, 56), (64, 64, 3, 3)),
        "float32",
        {"border_mode": "half"},
        "numba >= torch",
    ),
    Workload(
        "C3 conv N8 C128 28x28 F256 3x3 s2",
        "conv",
        ((8, 128, 28, 28), (256, 128, 3, 3)),
        "float32",
        {"border_mode": "half", "subsample": 2},
        "numba >= torch",
    ),
    Workload(
        "C4 conv N8 C256 14x14 F1024 1x1",
        "conv",
        ((8, 256, 14, 14), (1024, 256, 1, 1)),
        "float32",
        {},
        "numba >= torch",
    ),
    Workload(
        "C5 conv N4 C3 224x224 F64 7x7 s2 p3",
        "conv",
        ((4, 3, 224, 224), (64, 3, 7, 7)),
        "float32",
        {"border_mode": 3, "subsample": 2},
        "numba >= torch",
    ),
    # The same layers at batch 1 (inference latency: threading and call overheads dominate),
    # and C2 and C4 in float64.  Select a layer's three rows with --only C2 (and so on).
    Workload(
        "C2b1 conv N1 C64 56x56 F64 3x3 half",
        "conv",
        ((1, 64, 56, 56), (64, 64, 3, 3)),
        "float32",
        {"border_mode": "half"},
        "numba >= torch",
    ),
    Workload(
        "C3b1 conv N1 C128 28x28 F256 3x3 s2",
        "conv",
        ((1, 128, 28, 28), (256, 128, 3, 3)),
        "float32",
        {"border_mode": "half", "subsample": 2},
        "numba >= torch",
    ),
    Workload(
        "C4b1 conv N1 C256 14x14 F1024 1x1",
        "conv",
        ((1, 256, 14, 14), (1024, 256, 1, 1)),
        "float32",
        {},
        "numba >= torch",
    ),
    Workload(
        "C5b1 conv N1 C3 224x224 F64 7x7 s2 p3",
        "conv",
        ((1, 3, 224, 224), (64, 3, 7, 7)),
        "float32",
        {"border_mode": 3, "subsample": 2},
        "numba >= torch",
    ),
    Workload(
        "C2f64 conv N8 C64 56x56 F64 3x3 half f64",
        "conv",
        ((8, 64, 56, 56), (64, 64, 3, 3)),
        "float64",
        {"border_mode": "half"},
        "numba >= torch",
    ),
    Workload(
        "C4f64 conv N8 C256 14x14 F1024 1x1 f64",
        "conv",
        ((8, 256, 14, 14), (1024, 256, 1, 1)),
        "float64",
        {},
        "numba >= torch",
    ),
    Workload(
        "C6 depthwise N8 C128 56x56 3x3 g128",
        "conv",
        ((8, 128, 56, 56), (128, 1, 3, 3)),
        "float32",
        {"border_mode": "half", "num_groups": 128},
        "numba >= 2x torch",
    ),
    Workload(
        "seed conv N2 C3 5x5 F1 3x3",
        "conv",
        ((2, 3, 5, 5), (1, 3, 3, 3)),
        "float32",
        {},
        "numba overhead < torch",
    ),
    Workload(
        "img convolve_nd 4096^2 * 5x5 same f32",
        "convolve_nd",
        ((4096, 4096), (5, 5)),
        "float32",
        {"mode": "same"},
        "numba <= 25 ms",
    ),
    Workload(
        "rows convolve_nd (256,16384) * (1,257) axes=-1 f32",
        "convolve_nd",
        ((256, 16384), (1, 257)),
        "float32",
        {"axes": -1},
        "numba faster than fftconvolve(2 workers)",
    ),
    Workload(
        "fft 2048^2 * 64^2 full f64",
        "convolve_nd",
        ((2048, 2048), (64, 64)),
        "float64",
        {"mode": "full"},
        "fftw >= 1.5x best scipy",
    ),
    Workload(
        "fft 2048^2 * 64^2 full f32",
        "convolve_nd",
        ((2048, 2048), (64, 64)),
        "float32",
        {"mode": "full"},
        "fftw >= 1.5x best scipy",
    ),
    Workload(
        "fft 1e6 * 1e4 same f64",
        "convolve_nd",
        ((1_000_000,), (10_000,)),
        "float64",
        {"mode": "same"},
        "fftw >= 1.5x best scipy",
    ),
    Workload(
        "fft 128^3 * 9^3 same f32",
        "convolve_nd",
        ((128, 128, 128), (9, 9, 9)),
        "float32",
        {"mode": "same"},
        "fftw >= 1.5x best scipy",
    ),
    Workload(
        "conv2d 1 channel 1024^2 * 31x31",
        "conv",
        ((1, 1, 1024, 1024), (1, 1, 31, 31)),
        "float32",
        {},
        "fftw <= 25 ms",
    ),
    # Boundaries: each non-zero rule next to the same problem with fill, so one run gives the
    # overhead ratio.  Select them all with --only boundary.
    Workload(
        "boundary img 4096^2 * 5x5 same symm f32",
        "convolve_nd",
        ((4096, 4096), (5, 5)),
        "float32",
        {"mode": "same", "boundary": "symm"},
        "auto >= 5x best peer; <= 1.3x the fill row",
    ),
    Workload(
        "boundary img 4096^2 * 5x5 same wrap f32",
        "convolve_nd",
        ((4096, 4096), (5, 5)),
        "float32",
        {"mode": "same", "boundary": "wrap"},
        "<= 1.3x the fill row",
    ),
    Workload(
        "boundary img 4096^2 * 5x5 same fill f32",
        "convolve_nd",
        ((4096, 4096), (5, 5)),
        "float32",
        {"mode": "same", "boundary": "fill"},
        "the symm and wrap rows' yardstick",
    ),
    Workload(
        "boundary vol 256^3 * 7^3 same nearest f32",
        "convolve_nd",
        ((256, 256, 256), (7, 7, 7)),
        "float32",
        {"mode": "same", "boundary": "nearest"},
        "auto >= 5x best peer; <= 1.3x the fill row",
    ),
    Workload(
        "boundary vol 256^3 * 7^3 same fill f32",
        "convolve_nd",
        ((256, 256, 256), (7, 7, 7)),
        "float32",
        {"mode": "same", "boundary": "fill"},
        "the nearest row's yardstick",
    ),
    # Missing data: 1% of the signal NaN, interpolated over and propagated, so one run gives
    # the ratio.  Select both with --only nan.
    Workload(
        "nan img 2048^2 * 5x5 same f32 interpolate",
        "convolve_nd",
        ((2048, 2048), (5, 5)),
        "float32",
        {"mode": "same", "nan_policy": "interpolate"},
        "<= 2.5x the propagate row",
        missing=0.01,
    ),
    Workload(
        "nan img 2048^2 * 5x5 same f32 propagate",
        "convolve_nd",
        ((2048, 2048), (5, 5)),
        "float32",
        {"mode": "same", "nan_policy": "propagate"},
        "the interpolate row's yardstick",
        missing=0.01,
    ),
]


# The gradients of the CNN layers C2-C5: select them with --only grad.
FULL += [
    row
    for forward in FULL
    if forward.name.split()[0] in ("C2", "C3", "C4", "C5")
    for row in gradients(forward)
]


def quick(workload: Workload) -> Workload:
    """A tiny twin of ``workload`` with the same structure (for --quick and the tests)."""
    if workload.forward is not None:
        twin = gradients(quick(workload.forward))
        return twin[GRADIENTS.index(workload.kind)]
    first, second = workload.shapes
    if workload.kind == "conv":
        groups = workload.params.get("num_groups", 1)
        channels = min(first[1], 4 * groups) if groups > 1 else min(first[1], 4)
        filters = groups if groups > 1 else min(second[0], 4)
        small_first = (min(first[0], 2), channels) + tuple(min(n, 12) for n in first[2:])
        small_second = (filters, channels // groups) + tuple(min(k, 5) for k in second[2:])
        params = dict(workload.params, **({"num_groups": groups} if groups > 1 else {}))
    else:
        small_first = tuple(min(n, 40) for n in first)
        small_second = tuple(min(k, 7) for k in second)
        params = workload.params
    return Workload(
        workload.name,
        workload.kind,
        (small_first, small_second),
        workload.dtype,
        params,
        workload.target,
        workload.missing,
    )
