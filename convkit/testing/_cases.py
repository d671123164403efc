"""The cases of the equivalence matrix: deterministic, readable, reproducible.

Each :class:`Case` names one call of the public API (operation, shapes, dtype,
parameters, memory layout, non-finite values) and builds its arrays from a
seed, so that a failure can be rerun from its id alone.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from convkit.plugin import dilated_extent

__all__ = ["DTYPES", "KERNEL_VALUES", "LAYOUTS", "Case", "generate_cases"]

DTYPES = ("float32", "float64", "complex64", "complex128")
# Largest operands (points) of the "small" level.
SMALL_POINTS = (256, 64)
LAYOUTS = ("contiguous", "non-contiguous", "negative-stride", "fortran")
# How the values of the second operand are drawn (see Case.kernel_values).
KERNEL_VALUES = ("normal", "non-negative", "integers")
_NONFINITE = (np.nan, np.inf, -np.inf)


@dataclass(frozen=True)
class Case:
    """One call of the equivalence matrix.

    Attributes
    ----------
    operation : str
        ``"conv"``, ``"convolve_nd"``, ``"correlate_nd"``, ``"conv_grad_input"``,
        ``"conv_grad_filters"`` or ``"conv_transpose"``.
    shapes : tuple of two shapes
        ``(input, filters)`` for conv, ``(in1, in2)`` for convolve_nd and
        correlate_nd.
    dtype : str
        Both operands' dtype.
    params : tuple of (name, value)
        Keyword arguments of the call (border_mode, subsample, ... or mode,
        axes; boundary and fillvalue where the case extends the signal;
        nan_policy and preserve_nan where it has missing data).
    layout : str
        How the operands sit in memory: one of :data:`LAYOUTS`.
    nonfinite : tuple of (operand, position, value)
        Non-finite values written into the operands (position is a fraction
        of the flat size, so it stays valid for any shape).
    exponents : tuple of two ints
        Powers of two the operands are multiplied by (exactly), to put them
        near the limits of the dtype's range; ``(0, 0)`` leaves them near 1.
    positive : bool
        Absolute values of the random numbers: no sum of them cancels.
    gap : int
        With ``gap > 0``, each non-finite value written into the first
        operand fills a block of ``gap`` samples along every axis from its
        position (clipped at the ends): holes that whole windows can fall in.
    kernel_values : str
        How the second operand's values are drawn, one of
        :data:`KERNEL_VALUES`: ``"normal"`` as the first's;
        ``"non-negative"`` their absolute values (real and imaginary parts);
        ``"integers"`` integers from -2 to 2, zero included.  With the last
        two, ``m (*) w`` of ``nan_policy="interpolate"`` is either exactly 0
        or well away from it, so which outputs it leaves undefined is never
        a matter of rounding.
    tags : tuple of str
        What the case exercises (``"large"``, ``"even-kernel"``, ...).
    """

    operation: str
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    dtype: str
    params: tuple[tuple[str, object], ...]
    layout: str = "contiguous"
    nonfinite: tuple[tuple[int, float, float], ...] = ()
    exponents: tuple[int, int] = (0, 0)
    positive: bool = False
    gap: int = 0
    kernel_values: str = "normal"
    tags: tuple[str, ...] = field(default=(), compare=False)

    @property
    def id(self) -> str:
        """A readable, unique name: operation, dtype, shapes, parameters, layout, values."""
        shapes = "*".join("x".join(map(str, shape)) or "0d" for shape in self.shapes)
        params = ",".join(f"{name}={_short(value)}" for name, value in self.params)
        extra = [self.layout] if self.layout != "contiguous" else []
        if self.nonfinite:
            extra.append(
                "nonfinite="
                + "+".join(
                    f"{'ab'[operand]}{_short(value)}" for operand, _, value in self.nonfinite
                )
            )
        if self.exponents != (0, 0):
            extra.append("scale=" + "*".join(f"2^{exponent}" for exponent in self.exponents))
        if self.positive:
            extra.append("positive")
        if self.gap:
            extra.append(f"gap={self.gap}")
        if self.kernel_values != "normal":
            extra.append(f"in2={self.kernel_values}")
        return "-".join([self.operation, self.dtype, shapes, params, *extra])

    @property
    def kwargs(self) -> dict[str, object]:
        """The keyword arguments of the call."""
        return dict(self.params)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Build the two operands (deterministic in the case's id)."""
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        if self.kernel_values not in KERNEL_VALUES:
            raise ValueError(
                f"kernel_values must be one of {KERNEL_VALUES}, got {self.kernel_values!r}"
            )
        operands = []
        for number, (shape, exponent) in enumerate(zip(self.shapes, self.exponents)):
            count = 2 if np.dtype(self.dtype).kind == "c" else 1
            kernel_values = self.kernel_values if number == 1 else "normal"
            if kernel_values == "integers":
                parts = [rng.integers(-2, 3, shape).astype(np.float64) for _ in range(count)]
            else:
                parts = [rng.standard_normal(shape) for _ in range(count)]
            if self.positive or kernel_values == "non-negative":
                parts = [np.abs(part) for part in parts]
            values = parts[0] if len(parts) == 1 else parts[0] + 1j * parts[1]
            operands.append((values * 2.0**exponent).astype(self.dtype))
        for operand, position, value in self.nonfinite:
            array = operands[operand]
            if not array.size:
                continue
            flat_index = min(int(position * array.size), array.size - 1)
            if operand == 0 and self.gap and array.ndim:
                corner = np.unravel_index(flat_index, array.shape)
                array[tuple(slice(i, i + self.gap) for i in corner)] = value
            else:
                array.reshape(-1)[flat_index] = value
        return tuple(_lay_out(array, self.layout) for array in operands)  # type: ignore[return-value]


def _short(value: object) -> str:
    if isinstance(value, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(
            value, "nan" if math.isnan(value) else repr(value)
        )
    if isinstance(value, tuple):
        return "(" + ",".join(_short(v) for v in value) + ")"
    return str(value)


def _lay_out(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "contiguous" or array.ndim == 0:
        return np.ascontiguousarray(array)
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "negative-stride":
        flip = (slice(None, None, -1),) * array.ndim
        return array[flip].copy()[flip]
    if layout == "non-contiguous":
        holder = np.zeros(tuple(2 * n for n in array.shape), dtype=array.dtype)
        every_other = (slice(None, None, 2),) * array.ndim
        holder[every_other] = array
        return holder[every_other]
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def _cycle(options: tuple, index: int, salt: int):
    """The option of factor ``salt`` for case ``index``: every option recurs."""
    return options[(index + salt * (index // len(options))) % len(options)]


def _conv_cases(count: int, dtypes: tuple[str, ...]) -> list[Case]:
    cases = []
    border_modes = ("valid", "full", "half", "same", 1, "pairs")
    for dtype, spatial in itertools.product(dtypes, (1, 2, 3)):
        for i in range(count):
            rng = np.random.default_rng(zlib.crc32(f"conv{dtype}{spatial}{i}".encode()))
            groups = _cycle((1, 2, 3, "depthwise"), i, 1)
            kernel_parity = _cycle(("odd", "even"), i, 2)
            stride = _cycle((1, 2, 3), i, 3)
            dilation = _cycle((1, 1, 2), i, 4)
            border = _cycle(border_modes, i, 5)
            flip = _cycle((True, False), i, 6)
            layout = _cycle(LAYOUTS, i, 7)
            per_group = int(rng.integers(1, 3))
            group_count = per_group * 2 if groups == "depthwise" else groups
            channels = group_count if groups == "depthwise" else group_count * per_group
            filters = group_count * int(rng.integers(1, 3))
            kernel = tuple(
                int(rng.choice((1, 3, 5) if kernel_parity == "odd" else (2, 4)))
                if spatial < 3
                else int(rng.choice((1, 3) if kernel_parity == "odd" else (2,)))
                for _ in range(spatial)
            )
            sizes = tuple(
                dilated_extent(k, dilation) + int(rng.integers(0, 9 if spatial < 3 else 4))
                for k in kernel
            )
            if border == "pairs":
                border = tuple(
                    (int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(spatial)
                )
            params = (
                ("border_mode", border),
                ("subsample", stride),
                ("filter_flip", flip),
                ("filter_dilation", dilation),
                ("num_groups", group_count),
            )
            cases.append(
                Case(
                    "conv",
                    (
                        (int(rng.integers(1, 3)), channels, *sizes),
                        (filters, channels // group_count, *kernel),
                    ),
                    dtype,
                    params,
                    layout,
                    tags=(f"{spatial}d", kernel_parity, f"groups={groups}"),
                )
            )
    return cases


def _without_terms_cases(count: int, dtypes: tuple[str, ...]) -> list[Case]:
    """Layers with outputs whose sums have no terms: inputs shorter than the dilated
    kernel's reach (outputs between two taps) and padding wider than it (outputs in padding)."""
    cases = []
    for dtype, spatial in itertools.product(dtypes, (1, 2, 3)):
        for i in range(count):
            rng = np.random.default_rng(zlib.crc32(f"noterms{dtype}{spatial}{i}".encode()))
            dilation = _cycle((2, 3), i, 1)
            stride = _cycle((1, 2, 3), i, 2)
            border = _cycle(("half", "full", "same", "wide", "pairs"), i, 3)
            groups = _cycle((1, 2), i, 4)
            flip = _cycle((True, False), i, 5)
            layout = _cycle(LAYOUTS, i, 6)
            kernel = tuple(
                int(rng.choice((2, 3, 4) if spatial < 3 else (2, 3))) for _ in range(spatial)
            )
            reach = [dilated_extent(k, dilation) - 1 for k in kernel]
            if border == "wide":
                border = max(reach) + 1
            elif border == "pairs":
                border = tuple(
                    (r + 1 + int(rng.integers(0, 2)), int(rng.integers(0, r + 2))) for r in reach
                )
            sizes = tuple(int(rng.integers(1, r + 2)) for r in reach)
            channels = groups * int(rng.integers(1, 3))
            params = (
                ("border_mode", border),
                ("subsample", stride),
                ("filter_flip", flip),
                ("filter_dilation", dilation),
                ("num_groups", groups),
            )
            cases.append(
                Case(
                    "conv",
                    (
                        (int(rng.integers(1, 3)), channels, *sizes),
                        (groups * int(rng.integers(1, 3)), channels // groups, *kernel),
                    ),
                    dtype,
                    params,
                    layout,
                    tags=(f"{spatial}d", "without-terms"),
                )
            )
    return cases


def _convolve_cases(count: int, dtypes: tuple[str, ...]) -> list[Case]:
    cases = []
    for dtype, ndim in itertools.product(dtypes, (1, 2, 3)):
        for i in range(count):
            rng = np.random.default_rng(zlib.crc32(f"convolve{dtype}{ndim}{i}".encode()))
            mode = _cycle(("full", "same", "valid"), i, 1)
            kernel_parity = _cycle(("odd", "even"), i, 2)
            axes_kind = _cycle(("all", "subset", "negative"), i, 3)
            layout = _cycle(LAYOUTS, i, 4)
            swap = _cycle((False, False, True), i, 5)
            shape1, shape2 = [], []
            convolved = list(range(ndim))
            if axes_kind != "all" and ndim > 1:
                convolved = sorted(
                    rng.choice(ndim, size=int(rng.integers(1, ndim)), replace=False).tolist()
                )
            for axis in range(ndim):
                if axis in convolved:
                    k = int(rng.choice((1, 3, 5) if kernel_parity == "odd" else (2, 4)))
                    n = k + int(rng.integers(0, 10 if ndim < 3 else 5))
                    shape1.append(n)
                    shape2.append(k)
                else:
                    # Batch axes broadcast from 1 on either side, or are equal.
                    n = int(rng.integers(1, 5))
                    broadcast = _cycle(("equal", "in2", "in1"), i + axis, 6)
                    shape1.append(1 if broadcast == "in1" else n)
                    shape2.append(1 if broadcast == "in2" else n)
            if swap:
                shape1, shape2 = shape2, shape1
            axes = None
            if axes_kind == "subset" or (axes_kind == "negative" and ndim > 1):
                axes = tuple(a - ndim if axes_kind == "negative" else a for a in convolved)
            params = (("mode", mode), ("axes", axes))
            cases.append(
                Case(
                    "convolve_nd",
                    (tuple(shape1), tuple(shape2)),
                    dtype,
                    params,
                    layout,
                    tags=(f"{ndim}d", kernel_parity, f"axes={axes_kind}"),
                )
            )
    return cases


def _edge_cases(dtypes: tuple[str, ...]) -> list[Case]:
    """Sizes of 1, the seed's example, outputs without terms and non-finite values."""
    cases = []
    for dtype in dtypes:
        cases += [
            Case(
                "convolve_nd",
                ((1,), (1,)),
                dtype,
                (("mode", "full"), ("axes", None)),
                tags=("size-1",),
            ),
            Case(
                "convolve_nd",
                ((1, 1), (1, 1)),
                dtype,
                (("mode", "same"), ("axes", None)),
                tags=("size-1",),
            ),
            Case(
                "conv",
                ((1, 1, 1, 1), (1, 1, 1, 1)),
                dtype,
                (
                    ("border_mode", "valid"),
                    ("subsample", 1),
                    ("filter_flip", True),
                    ("filter_dilation", 1),
                    ("num_groups", 1),
                ),
                tags=("size-1",),
            ),
            Case(
                "conv",
                ((2, 3, 5, 5), (1, 3, 3, 3)),
                dtype,
                (
                    ("border_mode", "full"),
                    ("subsample", 1),
                    ("filter_flip", True),
                    ("filter_dilation", 1),
                    ("num_groups", 1),
                ),
                tags=("seed",),
            ),
            Case(
                "convolve_nd",
                ((2, 3, 5, 5), (1, 3, 3, 3)),
                dtype,
                (("mode", "full"), ("axes", None)),
                tags=("seed",),
            ),
            Case(
                "conv",
                ((1, 1, 1, 8), (1, 1, 2, 4)),
                dtype,
                (
                    ("border_mode", "half"),
                    ("subsample", 1),
                    ("filter_flip", True),
                    ("filter_dilation", 2),
                    ("num_groups", 1),
                ),
                tags=("without-terms",),
            ),
        ]
        # Batch axes that broadcast from 1 keep their broadcast length in every mode,
        # whichever operand is the short one (scipy#21876, cupy#10292).
        for mode in ("full", "same", "valid"):
            cases += [
                Case(
                    "convolve_nd",
                    ((1, 100), (7, 10)),
                    dtype,
                    (("mode", mode), ("axes", 1)),
                    tags=("broadcast-batch",),
                ),
                Case(
                    "convolve_nd",
                    ((1, 11), (10, 1)),
                    dtype,
                    (("mode", mode), ("axes", (1,))),
                    tags=("broadcast-batch",),
                ),
                Case(
                    "convolve_nd",
                    ((5, 1, 9), (1, 4, 3)),
                    dtype,
                    (("mode", mode), ("axes", (-1,))),
                    tags=("broadcast-batch",),
                ),
            ]
        for j, value in enumerate(_NONFINITE):
            cases.append(
                Case(
                    "convolve_nd",
                    ((23, 9), (4, 3)),
                    dtype,
                    (("mode", ("full", "same", "valid")[j]), ("axes", None)),
                    nonfinite=((0, 0.37, value), (1, 0.5, 0.0)),
                    tags=("nonfinite",),
                )
            )
            cases.append(
                Case(
                    "convolve_nd",
                    ((300,), (7,)),
                    dtype,
                    (("mode", "same"), ("axes", None)),
                    nonfinite=((0, 0.5, value), (0, 0.9, 1.0 if math.isnan(value) else -value)),
                    tags=("nonfinite",),
                )
            )
            cases.append(
                Case(
                    "conv",
                    ((2, 4, 9, 8), (4, 2, 3, 3)),
                    dtype,
                    (
                        ("border_mode", ("full", "half", 1)[j]),
                        ("subsample", 1 + j % 2),
                        ("filter_flip", True),
                        ("filter_dilation", 1),
                        ("num_groups", 2),
                    ),
                    nonfinite=((1, 0.2, value), (0, 0.6, value)),
                    tags=("nonfinite",),
                )
            )
    return cases


# Each boundary of the matrix, with the fillvalue it is checked with.
_BOUNDARIES = (("fill", 1.5), ("wrap", 0), ("symm", 0), ("mirror", 0), ("nearest", 0))


def _boundary_cases(dtypes: tuple[str, ...]) -> list[Case]:
    """Both operations with each boundary other than zero fill, in every rank 1-3, mode or
    border mode, kernel parity, stride and dilation, plus kernels longer than the signal
    (the rule repeats) and non-finite values next to an edge."""
    cases = []
    conv_modes = ("full", "half", "same", "pairs")
    for dtype, rank, (boundary, fillvalue) in itertools.product(dtypes, (1, 2, 3), _BOUNDARIES):
        extra = (("boundary", boundary), ("fillvalue", fillvalue))
        for i in range(2):
            index = len(cases)
            rng = np.random.default_rng(zlib.crc32(f"boundary{dtype}{rank}{boundary}{i}".encode()))
            parity = ("odd", "even")[(index + i) % 2]
            kernel = tuple(
                int(rng.choice((1, 3, 5) if parity == "odd" else (2, 4))) for _ in range(rank)
            )
            mode = _cycle(("full", "same"), index, 1)
            shape = tuple(k + int(rng.integers(-1, 6)) for k in kernel)
            cases.append(
                Case(
                    "convolve_nd",
                    (tuple(max(n, 1) for n in shape), kernel),
                    dtype,
                    (("mode", mode), ("axes", None), *extra),
                    _cycle(LAYOUTS, index, 2),
                    tags=(f"{rank}d", parity, f"boundary={boundary}"),
                )
            )
            stride = _cycle((1, 2, 3), index, 3)
            dilation = _cycle((1, 2), index, 4)
            border = _cycle(conv_modes, index, 5)
            if border == "pairs":
                border = tuple(
                    (int(rng.integers(0, 4)), int(rng.integers(0, 4))) for _ in range(rank)
                )
            sizes = tuple(dilated_extent(k, dilation) + int(rng.integers(0, 5)) for k in kernel)
            cases.append(
                Case(
                    "conv",
                    ((int(rng.integers(1, 3)), 2, *sizes), (2, 1, *kernel)),
                    dtype,
                    (
                        ("border_mode", border),
                        ("subsample", stride),
                        ("filter_flip", bool(i)),
                        ("filter_dilation", dilation),
                        ("num_groups", 2),
                        *extra,
                    ),
                    _cycle(LAYOUTS, index, 6),
                    tags=(f"{rank}d", parity, f"boundary={boundary}"),
                )
            )
    for dtype, (boundary, fillvalue) in itertools.product(dtypes, _BOUNDARIES):
        extra = (("boundary", boundary), ("fillvalue", fillvalue))
        cases.append(
            Case(
                "convolve_nd",
                ((3, 2), (9, 7)),
                dtype,
                (("mode", "same"), ("axes", None), *extra),
                tags=("2d", "kernel-longer", f"boundary={boundary}"),
            )
        )
        for j, value in enumerate(_NONFINITE):
            cases.append(
                Case(
                    "convolve_nd",
                    ((17, 9), (4, 3)),
                    dtype,
                    (("mode", ("full", "same", "same")[j]), ("axes", None), *extra),
                    nonfinite=((0, 0.0, value),),
                    tags=("nonfinite", f"boundary={boundary}"),
                )
            )
            cases.append(
                Case(
                    "conv",
                    ((1, 2, 9, 8), (2, 2, 3, 3)),
                    dtype,
                    (
                        ("border_mode", ("full", "half", 2)[j]),
                        ("subsample", 1 + j % 2),
                        ("filter_flip", True),
                        ("filter_dilation", 1),
                        ("num_groups", 1),
                        *extra,
                    ),
                    nonfinite=((0, 0.99, value),),
                    tags=("nonfinite", f"boundary={boundary}"),
                )
            )
    return cases


def _signal_shapes(
    rng: np.random.Generator, rank: int, parity: str, batch: str, longer: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...] | None]:
    """Shapes of a signal and a kernel, and the axes: every axis convolved, or with
    ``batch`` set, axis 0 a batch axis on which ``batch`` ("in1" or "in2") has length 1."""
    kernel = [int(rng.choice((1, 3, 5) if parity == "odd" else (2, 4))) for _ in range(rank)]
    signal = [k + int(rng.integers(0, longer)) for k in kernel]
    if batch == "none" or rank == 1:
        return tuple(signal), tuple(kernel), None
    count = int(rng.integers(2, 4))
    signal[0], kernel[0] = (1, count) if batch == "in1" else (count, 1)
    return tuple(signal), tuple(kernel), tuple(range(1, rank))


def _correlate_cases(repeats: int, dtypes: tuple[str, ...]) -> list[Case]:
    """correlate_nd in every mode × boundary (``repeats`` cases each per dtype), ranks
    1-3, odd and even kernels, both operand orders in "valid" (and a kernel longer than
    the signal in "same"), batch axes that broadcast, every layout, non-finite values in
    either operand; complex dtypes check that in2 is conjugated."""
    cases = []
    nonfinite = ((), ((0, 0.3, math.nan),), ((1, 0.6, math.inf),), ((0, 0.0, -math.inf),))
    swaps = itertools.cycle((False, True))
    crossed = itertools.product(
        dtypes, ("full", "same", "valid"), (("fill", 0), *_BOUNDARIES), range(repeats)
    )
    for dtype, mode, (boundary, fillvalue), repeat in crossed:
        index = len(cases)  # the other factors cycle over the whole list
        seed = f"correlate{dtype}{mode}{boundary}{fillvalue}{repeat}"
        rng = np.random.default_rng(zlib.crc32(seed.encode()))
        rank = _cycle((1, 2, 3), index, 1)
        parity = _cycle(("odd", "even"), index, 2)
        batch = _cycle(("none", "in1", "none", "in2"), index, 3)
        signal, kernel, axes = _signal_shapes(rng, rank, parity, batch, 8 if rank < 3 else 4)
        if mode != "full" and next(swaps):
            signal, kernel = kernel, signal
        cases.append(
            Case(
                "correlate_nd",
                (signal, kernel),
                dtype,
                (("mode", mode), ("axes", axes), ("boundary", boundary), ("fillvalue", fillvalue)),
                _cycle(LAYOUTS, index, 4),
                _cycle(nonfinite, index, 5),
                tags=(f"{rank}d", parity, "correlate", f"boundary={boundary}"),
            )
        )
    return cases


# nan_policy keywords of the matrix: (nan_policy, preserve_nan).
_POLICIES = (("interpolate", False), ("interpolate", True), ("fill", False))


def _missing_data_cases(repeats: int, dtypes: tuple[str, ...]) -> list[Case]:
    """convolve_nd and correlate_nd with each nan_policy ("interpolate" with and without
    preserve_nan, "fill") × boundary (``repeats`` cases each per dtype), in every mode,
    ranks 1-3, odd and even kernels, batch axes that broadcast and both operand orders in
    "valid"; in1 has NaN and inf, single or in holes as wide as the kernel (windows
    without a finite sample).  "interpolate" draws non-negative or small-integer
    kernels, so that "m (*) w is 0" is never a question of rounding; "fill" sometimes
    has a NaN in in2, which propagates."""
    cases = []
    swaps = itertools.cycle((False, True))
    crossed = itertools.product(dtypes, _POLICIES, (("fill", 0), *_BOUNDARIES), range(repeats))
    for dtype, (policy, preserve_nan), (boundary, fillvalue), repeat in crossed:
        index = len(cases)
        seed = f"missing{dtype}{policy}{preserve_nan}{boundary}{fillvalue}{repeat}"
        rng = np.random.default_rng(zlib.crc32(seed.encode()))
        rank = _cycle((1, 2, 3), index, 1)
        mode = "same" if preserve_nan else _cycle(("full", "same", "valid"), index, 2)
        parity = _cycle(("odd", "even"), index, 3)
        batch = _cycle(("none", "in2", "none", "in1"), index, 4)
        signal, kernel, axes = _signal_shapes(rng, rank, parity, batch, 7 if rank < 3 else 3)
        if mode == "valid" and next(swaps):
            signal, kernel = kernel, signal
        first, second = _cycle(_NONFINITE, index, 5), _cycle(_NONFINITE, index + 1, 5)
        holes = ((0, _cycle((0.0, 0.45, 0.8), index, 6), first), (0, 0.97, second))
        if policy == "fill" and _cycle((False, True), index, 7):
            holes += ((1, 0.5, math.nan),)
        params = (
            ("mode", mode),
            ("axes", axes),
            ("boundary", boundary),
            ("fillvalue", fillvalue),
            ("nan_policy", policy),
        )
        cases.append(
            Case(
                _cycle(("convolve_nd", "correlate_nd"), index, 8),
                (signal, kernel),
                dtype,
                (*params, ("preserve_nan", True)) if preserve_nan else params,
                _cycle(LAYOUTS, index, 9),
                holes,
                gap=_cycle((0, 1, max(kernel)), index, 10),
                kernel_values=(
                    _cycle(("non-negative", "integers"), index, 11)
                    if policy == "interpolate"
                    else "normal"
                ),
                tags=(f"{rank}d", parity, f"nan_policy={policy}", f"boundary={boundary}"),
            )
        )
    return cases


def _large_signal_cases(dtypes: tuple[str, ...]) -> list[Case]:
    """correlate_nd and the missing-data policies at sizes that take FFT, overlap-add
    and blocked paths, with each boundary."""
    shapes = (
        ((4096,), (33,), (0.1, 0.5, 0.93), 40),
        ((160, 150), (9, 8), (0.0, 0.3, 0.7), 12),
        ((40, 36, 30), (5, 4, 5), (0.2, 0.6, 0.99), 6),
    )
    cases = []
    for dtype in dtypes:
        if np.dtype(dtype).kind == "c":
            continue
        for index, ((signal, kernel, positions, gap), (boundary, fillvalue)) in enumerate(
            itertools.product(shapes, _BOUNDARIES)
        ):
            holes = tuple(
                (0, position, _NONFINITE[number % 3]) for number, position in enumerate(positions)
            )
            extra = (("boundary", boundary), ("fillvalue", fillvalue))
            mode = _cycle(("same", "full", "valid"), index, 1)
            cases += [
                Case(
                    "convolve_nd",
                    (signal, kernel),
                    dtype,
                    (("mode", mode), ("axes", None), *extra, ("nan_policy", "interpolate")),
                    nonfinite=holes,
                    gap=gap,
                    kernel_values="non-negative",
                    tags=("large", "nan_policy=interpolate", f"boundary={boundary}"),
                ),
                Case(
                    "correlate_nd",
                    (signal, kernel) if index % 2 else (kernel, signal),
                    dtype,
                    (("mode", "valid" if index % 2 == 0 else mode), ("axes", None), *extra),
                    nonfinite=holes[:1],
                    tags=("large", "correlate", f"boundary={boundary}"),
                ),
            ]
    return cases


def _high_rank_cases(dtypes: tuple[str, ...]) -> list[Case]:
    """convolve_nd over 4 and 5 axes, which backends with a rank limit run lowered
    (a sum of lower-rank problems), in every mode and both operand orders."""
    shapes = (
        ((4, 5, 6, 7), (2, 3, 2, 3)),
        ((3, 4, 3, 4), (2, 2, 2, 3)),
        ((3, 3, 3, 3, 3), (2, 2, 2, 2, 2)),
        ((2, 3, 3, 3, 4), (2, 2, 1, 2, 3)),
    )
    cases = []
    for dtype in dtypes:
        for i, ((first, second), mode) in enumerate(
            itertools.product(shapes, ("full", "same", "valid"))
        ):
            if i % 2:
                first, second = second, first
            cases.append(
                Case(
                    "convolve_nd",
                    (first, second),
                    dtype,
                    (("mode", mode), ("axes", None)),
                    _cycle(LAYOUTS, i, 1),
                    tags=(f"{len(first)}d", "high-rank"),
                )
            )
        for j, value in enumerate(_NONFINITE):
            cases.append(
                Case(
                    "convolve_nd",
                    ((3, 4, 3, 4), (2, 2, 2, 3)),
                    dtype,
                    (("mode", ("full", "same", "valid")[j]), ("axes", None)),
                    nonfinite=((0, 0.4, value), (1, 0.5, 0.0)),
                    tags=("4d", "high-rank", "nonfinite"),
                )
            )
    return cases


def _near_limit_cases(dtypes: tuple[str, ...]) -> list[Case]:
    """Operands near the top of the dtype's range with results that fit it.

    One operand is scaled to about ``2**(maxexp - 3)`` (float32 near 1e38,
    float64 near 1e307), the other down by the number of terms, so that
    ``|in1| (*) |in2|`` stays below the largest finite value while the
    transforms of FFT and Winograd methods, computed as they are, would not.
    """

    def small(terms: int) -> int:
        """The exponent of the other operand: |values| up to ~2**2.2 each, ``terms`` of them."""
        return -3 - math.ceil(math.log2(terms))

    cases = []
    layer = (
        ("border_mode", "half"),
        ("subsample", 1),
        ("filter_flip", True),
        ("filter_dilation", 1),
        ("num_groups", 1),
    )
    for dtype in dtypes:
        top = int(np.finfo(dtype).maxexp) - 3
        cases += [
            Case(
                "conv",
                ((2, 16, 24, 24), (16, 16, 3, 3)),
                dtype,
                layer,
                exponents=(top, small(144)),
                tags=("near-limit", "winograd"),
            ),
            Case(
                "conv",
                ((2, 16, 24, 24), (16, 16, 3, 3)),
                dtype,
                layer,
                exponents=(top, small(144)),
                positive=True,
                tags=("near-limit", "winograd"),
            ),
            Case(
                "conv",
                ((1, 2, 6, 6), (2, 2, 3, 3)),
                dtype,
                (("border_mode", "full"),) + layer[1:],
                exponents=(top, small(18)),
                tags=("near-limit",),
            ),
            Case(
                "conv",
                ((1, 2, 7, 5), (4, 1, 2, 3)),
                dtype,
                (
                    ("border_mode", 1),
                    ("subsample", 2),
                    ("filter_flip", False),
                    ("filter_dilation", 1),
                    ("num_groups", 2),
                ),
                exponents=(small(6), top),
                tags=("near-limit",),
            ),
            Case(
                "convolve_nd",
                ((200,), (7,)),
                dtype,
                (("mode", "same"), ("axes", None)),
                exponents=(top, small(7)),
                tags=("near-limit",),
            ),
            Case(
                "convolve_nd",
                ((200,), (7,)),
                dtype,
                (("mode", "same"), ("axes", None)),
                exponents=(top, small(7)),
                positive=True,
                tags=("near-limit",),
            ),
            Case(
                "convolve_nd",
                ((2000,), (9,)),
                dtype,
                (("mode", "valid"), ("axes", None)),
                exponents=(top, small(9)),
                tags=("near-limit",),
            ),
            Case(
                "convolve_nd",
                ((12, 9), (4, 3)),
                dtype,
                (("mode", "full"), ("axes", None)),
                exponents=(small(12), top),
                tags=("near-limit",),
            ),
            Case(
                "convolve_nd",
                ((23, 9), (4, 3)),
                dtype,
                (("mode", "same"), ("axes", None)),
                nonfinite=((0, 0.37, math.inf), (0, 0.8, math.nan), (1, 0.5, 0.0)),
                exponents=(top, small(12)),
                tags=("near-limit", "nonfinite"),
            ),
        ]
    return cases


def _complex_nonfinite_layer_cases(dtypes: tuple[str, ...]) -> list[Case]:
    """Complex layers with NaN or inf, each above 2**21 multiply-adds.

    Layers that size take the GEMM paths of im2col backends (images side by
    side, one per GEMM, 1x1 layers as one matmul), where a BLAS's complex
    multiply can give NaN parts where the direct definition's products give
    inf; the smaller cases above stay on direct kernels.
    """
    layers = (
        ("complex64", ((2, 16, 24, 24), (16, 16, 3, 3)), "valid", ((1, 0.4, math.inf),)),
        (
            "complex64",
            ((2, 64, 20, 20), (64, 64, 1, 1)),
            "valid",
            ((0, 0.6, -math.inf), (1, 0.3, math.nan)),
        ),
        (
            "complex128",
            ((2, 8, 48, 48), (8, 8, 3, 3)),
            "half",
            ((0, 0.3, math.inf), (0, 0.7, -math.inf), (1, 0.2, 0.0)),
        ),
        (
            "complex128",
            ((1, 16, 48, 48), (16, 16, 3, 3)),
            "valid",
            ((1, 0.5, -math.inf), (0, 0.8, math.nan)),
        ),
    )
    return [
        Case(
            "conv",
            shapes,
            dtype,
            (
                ("border_mode", border),
                ("subsample", 1),
                ("filter_flip", True),
                ("filter_dilation", 1),
                ("num_groups", 1),
            ),
            nonfinite=nonfinite,
            tags=("nonfinite", "gemm-size"),
        )
        for dtype, shapes, border, nonfinite in layers
        if dtype in dtypes
    ]


def _large_cases(dtypes: tuple[str, ...]) -> list[Case]:
    """Sizes that take FFT, overlap-add and blocked paths in real backends."""
    cases = []
    for dtype in dtypes:
        if np.dtype(dtype).kind == "c":
            continue
        cases += [
            Case(
                "convolve_nd",
                ((4096,), (129,)),
                dtype,
                (("mode", "same"), ("axes", None)),
                tags=("large",),
            ),
            Case(
                "convolve_nd",
                ((20000,), (9,)),
                dtype,
                (("mode", "valid"), ("axes", None)),
                tags=("large",),
            ),
            Case(
                "convolve_nd",
                ((160, 150), (33, 32)),
                dtype,
                (("mode", "full"), ("axes", None)),
                tags=("large",),
            ),
            Case(
                "convolve_nd",
                ((8, 1000), (1, 65)),
                dtype,
                (("mode", "same"), ("axes", -1)),
                tags=("large",),
            ),
            Case(
                "convolve_nd",
                ((40, 36, 30), (7, 5, 6)),
                dtype,
                (("mode", "same"), ("axes", None)),
                tags=("large",),
            ),
            Case(
                "conv",
                ((4, 32, 20, 20), (48, 32, 3, 3)),
                dtype,
                (
                    ("border_mode", "half"),
                    ("subsample", 1),
                    ("filter_flip", True),
                    ("filter_dilation", 1),
                    ("num_groups", 1),
                ),
                tags=("large",),
            ),
            Case(
                "conv",
                ((2, 16, 33, 31), (16, 1, 3, 3)),
                dtype,
                (
                    ("border_mode", "same"),
                    ("subsample", 2),
                    ("filter_flip", False),
                    ("filter_dilation", 1),
                    ("num_groups", 16),
                ),
                tags=("large", "depthwise"),
            ),
            Case(
                "conv",
                ((2, 64, 9, 9), (96, 64, 1, 1)),
                dtype,
                (
                    ("border_mode", "valid"),
                    ("subsample", 1),
                    ("filter_flip", True),
                    ("filter_dilation", 1),
                    ("num_groups", 1),
                ),
                tags=("large",),
            ),
            Case(
                "conv",
                ((1, 3, 64, 64), (8, 3, 7, 7)),
                dtype,
                (
                    ("border_mode", 3),
                    ("subsample", 2),
                    ("filter_flip", True),
                    ("filter_dilation", 1),
                    ("num_groups", 1),
                ),
                tags=("large",),
            ),
            Case(
                "conv",
                ((1, 1, 96, 96), (1, 1, 31, 31)),
                dtype,
                (
                    ("border_mode", "valid"),
                    ("subsample", 1),
                    ("filter_flip", True),
                    ("filter_dilation", 1),
                    ("num_groups", 1),
                ),
                tags=("large",),
            ),
            Case(
                "conv",
                ((2, 32, 20, 20), (32, 32, 3, 3)),
                dtype,
                (
                    ("border_mode", "full"),
                    ("subsample", 1),
                    ("filter_flip", True),
                    ("filter_dilation", 1),
                    ("num_groups", 1),
                ),
                nonfinite=((1, 0.01, math.inf), (1, 0.5, math.nan), (0, 0.3, -math.inf)),
                tags=("large", "nonfinite"),
            ),
            Case(
                "conv",
                ((2, 4, 300), (6, 4, 25)),
                dtype,
                (
                    ("border_mode", "full"),
                    ("subsample", 3),
                    ("filter_flip", True),
                    ("filter_dilation", 2),
                    ("num_groups", 1),
                ),
                tags=("large",),
            ),
        ]
    return cases


def generate_cases(level: str = "fast", dtypes: tuple[str, ...] = DTYPES) -> list[Case]:
    """The equivalence matrix.

    Parameters
    ----------
    level : {"fast", "full", "small"}
        ``"fast"`` covers every factor value (operation x dtype x rank x mode
        or border mode x stride x dilation x groups x kernel parity x layout)
        in a few hundred small cases, plus edge and non-finite cases, layers
        with outputs whose sums have no terms, operands near the top of
        the dtype's range, convolve_nd over 4 and 5 axes, and a few complex
        layers with NaN or inf large enough for a backend's GEMM paths;
        ``"full"`` crosses them more densely and adds large sizes that take
        FFT and blocked paths; ``"small"`` is the fast matrix without its
        larger operands (at most 256 and 64 points), for slow targets such as
        Numba's CUDA simulator.  Every level has the boundary cases (each
        boundary other than zero fill, on both operations), correlation and
        missing-data cases, and every conv case gives the three gradient
        operations' cases; the small level a quarter of each of these.
    dtypes : tuple of str
        Which dtypes to generate.

    Examples
    --------
    >>> from convkit.testing import generate_cases
    >>> cases = generate_cases("fast")
    >>> len(cases) > 200 and len({case.id for case in cases}) == len(cases)
    True
    """
    if level not in ("fast", "full", "small"):
        raise ValueError(f"level must be 'fast', 'full' or 'small', got {level!r}")
    per_group = 48 if level == "full" else 12
    repeats = 3 if level == "full" else 1
    cases = (
        _conv_cases(per_group, dtypes)
        + _convolve_cases(per_group, dtypes)
        + _edge_cases(dtypes)
        + _without_terms_cases(per_group // 3, dtypes)
        + _near_limit_cases(dtypes)
        + _high_rank_cases(dtypes)
        + _complex_nonfinite_layer_cases(dtypes)
        # Every fourth boundary, correlation and missing-data case at the small level
        # keeps simulator runs short.
        + _boundary_cases(dtypes)[:: 4 if level == "small" else 1]
        + _correlate_cases(repeats, dtypes)[:: 4 if level == "small" else 1]
        + _missing_data_cases(repeats, dtypes)[:: 4 if level == "small" else 1]
    )
    if level == "full":
        cases += _large_cases(dtypes) + _large_signal_cases(dtypes)
    if level == "small":
        cases = [
            case
            for case in cases
            if math.prod(case.shapes[0]) <= SMALL_POINTS[0]
            and math.prod(case.shapes[1]) <= SMALL_POINTS[1]
        ]
    from convkit.testing._gradient_cases import gradient_cases

    gradients = gradient_cases(cases)
    # At the small level, every fourth gradient case: a backend without native gradients
    # runs them as the conv problems the other levels hold it to.
    cases += gradients[:: 4 if level == "small" else 1]
    unique = {case.id: case for case in cases}
    return list(unique.values())
