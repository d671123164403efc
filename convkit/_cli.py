"""``python -m convkit``: ``info`` (the backend table), ``demo`` (the seed comparison), ``check``, ``warmup``,
``convolve`` (files larger than memory, through Dask)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

import convkit
from convkit._environment import EnvironmentVariableError, environment_problems
from convkit._files import add_convolve_command, run_convolve_command

__all__ = ["main"]


def _count(text: str) -> int:
    """An argparse type: a whole number, zero or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return value


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def info() -> str:
    """The backend table of ``python -m convkit info``."""
    rows = []
    for backend in convkit.list_backends():
        status = (
            "yes" + (" (simulated)" if backend.simulated else "")
            if backend.available
            else f"no: {backend.reason}"
        )
        rows.append(
            [
                backend.name,
                status,
                backend.version or "-",
                ",".join(backend.operations) or "-",
                ",".join(backend.dtypes) or "-",
                "-" if backend.threads is None else str(backend.threads),
                backend.device or "-",
            ]
        )
    header = ["backend", "available", "version", "operations", "dtypes", "threads", "device"]
    problems = environment_problems()
    if problems:
        settings = (
            f"convkit {convkit.__version__}, numpy {np.__version__}; settings unusable "
            "until the environment is fixed:\n" + "\n".join(f"error: {p}" for p in problems)
        )
    else:
        settings = (
            f"convkit {convkit.__version__}, numpy {np.__version__}; threads setting "
            f"{convkit.get_num_threads()}, memory limit {convkit.get_memory_limit() / 2**30:.1f} GiB"
        )
    return settings + "\n\n" + _table(rows, header)


def _show(title: str, array: np.ndarray) -> None:
    printable = np.round(np.asarray(array), 9) + 0.0  # FFT rounding noise must not print as -0.
    print(f"{title}  shape {array.shape}")
    print(np.array2string(printable, precision=4, suppress_small=True, max_line_width=110))


IMAGE = np.arange(25.0).reshape(5, 5)
KERNEL = np.arange(9.0).reshape(3, 3)
BATCH = np.arange(2 * 3 * 5 * 5, dtype=float).reshape(2, 3, 5, 5)
FILTERS = np.arange(27.0).reshape(1, 3, 3, 3)
# The demo's calls, by the short name of the agreement table's columns.
DEMO_CALLS = {
    "conv2d full": lambda: convkit.conv2d(
        IMAGE[None, None], KERNEL[None, None], border_mode="full"
    ),
    "conv2d valid": lambda: convkit.conv2d(
        IMAGE[None, None], KERNEL[None, None], border_mode="valid"
    ),
    "nd full": lambda: convkit.convolve_nd(IMAGE, KERNEL, mode="full"),
    "nd valid": lambda: convkit.convolve_nd(IMAGE, KERNEL, mode="valid"),
    "batch conv2d": lambda: convkit.conv2d(BATCH, FILTERS, border_mode="full"),
    "batch nd": lambda: convkit.convolve_nd(BATCH, FILTERS, mode="full"),
    "depthwise": lambda: convkit.conv2d(
        BATCH, np.broadcast_to(KERNEL, (3, 1, 3, 3)), border_mode="full", num_groups=3
    ),
    "nd axes": lambda: convkit.convolve_nd(BATCH, KERNEL[None, None], mode="full", axes=(-2, -1)),
}


def _comparison(name: str) -> None:
    """The worked comparison of conv2d (Theano) and convolve_nd (scipy), computed by ``name``."""
    with convkit.use_backend(name):
        print("\n1. One image, one filter: both operations agree.")
        for mode in ("full", "valid"):
            theano_style, scipy_style = DEMO_CALLS[f"conv2d {mode}"](), DEMO_CALLS[f"nd {mode}"]()
            _show(
                f"conv2d(image[None, None], kernel[None, None], border_mode={mode!r})", theano_style
            )
            _show(f"convolve_nd(image, kernel, mode={mode!r})", scipy_style)
            print("equal:", bool(np.allclose(theano_style[0, 0], scipy_style)))

        print("\n2. Batch 2 x 3 channels: the shapes differ.")
        summed = DEMO_CALLS["batch conv2d"]()
        with convkit.use_backend(f"{name},scipy"):  # the reference steps in where this one cannot
            everywhere = DEMO_CALLS["batch nd"]()
        print(
            f"conv2d(x, w, 'full').shape      = {summed.shape}   "
            "(sums over channels per image and filter)"
        )
        print(
            f"convolve_nd(x, w, 'full').shape = {everywhere.shape}   "
            "(convolves over every axis, channels and batch too)"
        )
        per_channel_sum = sum(
            convkit.convolve_nd(BATCH[:, c], FILTERS[0, c][None], mode="full") for c in range(3)
        )
        print(
            "conv2d(x, w)[:, 0] == sum over c of convolve_nd(x[:, c], w[0, c]):",
            bool(np.allclose(summed[:, 0], per_channel_sum)),
        )
        _show("conv2d(x, w, 'full')[0, 0, :3, :3]", summed[0, 0, :3, :3])

        print("\n3. Channel mismatch: conv2d refuses filters made for 1 channel.")
        try:
            convkit.conv2d(BATCH, KERNEL[None, None])
        except ValueError as error:
            print(f"ValueError: {error}")

        print("\n4. Filters without channels.")
        try:
            convkit.conv2d(BATCH, KERNEL)
        except ValueError as error:
            print(f"ValueError: {error}")
        depthwise, each_channel = DEMO_CALLS["depthwise"](), DEMO_CALLS["nd axes"]()
        print(
            f"per channel, no sum: conv2d(x, kernel as (3, 1, 3, 3), num_groups=3) {depthwise.shape}"
            f" == convolve_nd(x, kernel[None, None], axes=(-2, -1)) {each_channel.shape}:",
            bool(np.allclose(depthwise, each_channel)),
        )


def _agreement(backends: Sequence[str]) -> bool:
    """Print each backend's results of the demo's calls against the reference; True if all agree."""
    with convkit.use_backend("scipy"):
        expected = {label: call() for label, call in DEMO_CALLS.items()}
    rows, notes, agree = [], [], True
    for name in backends:
        row = [name]
        with convkit.use_backend(name):
            for label, call in DEMO_CALLS.items():
                try:
                    got = call()
                except convkit.BackendUnavailableError as error:
                    notes.append(f"{name}, {label}: {str(error).rsplit(f'{name}: ', 1)[-1]}")
                    row.append(f"n/a [{len(notes)}]")
                    continue
                same = got.shape == expected[label].shape and np.allclose(
                    got, expected[label], rtol=1e-12, atol=1e-9
                )
                agree &= same
                row.append("ok" if same else "DIFFERS")
        rows.append(row)
    print(
        "\nThe same calls on each backend, against the reference 'scipy' (ok: equal within rounding):\n"
    )
    print(_table(rows, ["backend", *DEMO_CALLS]))
    for number, note in enumerate(notes, 1):
        print(f"[{number}] {note}")
    return agree


def demo(backends: Sequence[str]) -> bool:
    """The worked comparison of conv2d (Theano) and convolve_nd (scipy), then every backend's agreement.

    The comparison is printed once, computed by the first of ``backends``;
    a table then says, per backend, whether each of the comparison's calls
    gives the reference's result.  Returns whether every backend agreed.
    """
    print("image = np.arange(25.0).reshape(5, 5); kernel = np.arange(9.0).reshape(3, 3)")
    print("x = np.arange(150.0).reshape(2, 3, 5, 5); w = np.arange(27.0).reshape(1, 3, 3, 3)")
    print(f"(computed by backend {backends[0]!r})")
    _comparison(backends[0])
    return _agreement(backends)


def _check_auto(cases: Sequence) -> tuple:
    """Run each case on the backend "auto" picks for it; the report counts the picks."""
    from convkit._selection import select_backend
    from convkit.plugin import normalize_conv, normalize_convolve
    from convkit.testing import CaseResult, Report, check_case

    start = time.perf_counter()
    results, picks = [], {}
    for case in cases:
        first, second = case.arrays()
        arguments = case.kwargs
        if case.operation == "convolve_nd":
            problem = normalize_convolve(first, second, arguments["mode"], arguments["axes"])
        elif case.operation != "conv":
            from convkit.testing._gradient_cases import gradient_problem

            problem = gradient_problem(case, first, second)
        else:
            problem = normalize_conv(
                first,
                second,
                arguments["border_mode"],
                arguments["subsample"],
                arguments["filter_flip"],
                arguments["filter_dilation"],
                arguments["num_groups"],
                None,
                "conv",
            )
        if isinstance(problem, np.ndarray):  # solved by the core: no backend runs
            results.append(check_case("scipy", case))
            continue
        try:
            backend = select_backend(problem, "auto")
        except convkit.BackendUnavailableError as error:
            results.append(CaseResult(case, "skip", message=str(error)))
            continue
        picks[backend.name] = picks.get(backend.name, 0) + 1
        results.append(check_case(backend, case))
    report = Report("auto", results, time.perf_counter() - start)
    chosen = ", ".join(
        f"{name} {count}" for name, count in sorted(picks.items(), key=lambda item: -item[1])
    )
    return report, f"auto picked, per case: {chosen or 'no backend'}"


def check(backend: str, level: str, worst: int) -> int:
    """``python -m convkit check``: 0 when every case passes, 1 on failures, 2 on errors.

    ``backend`` "auto" checks, for each case, the backend that "auto" picks for it.
    """
    from convkit.testing import check_backend, generate_cases

    problems = environment_problems()
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    cases = generate_cases(level)
    picked = None
    try:
        if backend.strip().lower() == "auto":
            report, picked = _check_auto(cases)
        else:
            report = check_backend(backend, cases)
    except convkit.BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.format(worst))
    if picked:
        print(picked)
    return 0 if report.ok else 1


# Representative problems per path a backend may compile (small, direct, strided, 3x3 layers
# wide enough for Winograd's 4x4 tiles, with tiles beside zeros, and small enough for its 2x2
# tiles, 5x5 layers for im2col + GEMM, convolve_nd): (label, call).
WARMUP_CALLS = (
    (
        "conv2d 3x3, stride 1",
        lambda x: convkit.conv2d(x((2, 3, 16, 16)), x((4, 3, 3, 3)), border_mode="half"),
    ),
    (
        "conv2d 3x3, stride 2",
        lambda x: convkit.conv2d(
            x((2, 3, 16, 16)), x((4, 3, 3, 3)), border_mode="half", subsample=2
        ),
    ),
    (
        "conv2d 3x3 layer, 16 channels",
        lambda x: convkit.conv2d(x((2, 16, 32, 32)), x((16, 16, 3, 3)), border_mode="half"),
    ),
    (
        "conv2d 3x3 layer, zeros beside values",
        lambda x: convkit.conv2d(
            x((2, 16, 32, 32)) * (np.arange(32) >= 13), x((16, 16, 3, 3)), border_mode="half"
        ),
    ),
    (
        "conv2d 3x3 layer, 6x6 images",
        lambda x: convkit.conv2d(x((4, 64, 6, 6)), x((64, 64, 3, 3)), border_mode="half"),
    ),
    (
        "conv2d 5x5 layer, stride 2",
        lambda x: convkit.conv2d(
            x((2, 8, 64, 64)), x((16, 8, 5, 5)), border_mode="half", subsample=2
        ),
    ),
    (
        "conv2d 5x5 layer, wide images",
        lambda x: convkit.conv2d(x((2, 4, 50, 50)), x((16, 4, 5, 5))),
    ),
    (
        "conv2d depthwise 3x3",
        lambda x: convkit.conv2d(
            x((2, 8, 16, 16)), x((8, 1, 3, 3)), border_mode="half", num_groups=8
        ),
    ),
    ("convolve_nd 2-d, same", lambda x: convkit.convolve_nd(x((64, 64)), x((5, 5)), mode="same")),
    (
        "convolve_nd rows, axes=-1",
        lambda x: convkit.convolve_nd(x((8, 512)), x((1, 31)), mode="same", axes=-1),
    ),
    (
        "conv2d input gradient, stride 2",
        lambda x: convkit.conv_grad_input(
            x((4, 8, 8, 8)), x((8, 8, 3, 3)), (4, 8, 16, 16), "half", 2
        ),
    ),
    (
        "conv2d filter gradient, stride 2",
        lambda x: convkit.conv_grad_filters(
            x((4, 8, 16, 16)), x((4, 8, 8, 8)), (8, 8, 3, 3), "half", 2
        ),
    ),
)
WARMUP_DTYPES = ("float32", "float64", "complex64", "complex128")


class _Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, a line per step elsewhere."""

    WIDTH = 30

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.done = total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.redraw = self.stream.isatty()
        self.shown = 0

    def step(self, text: str) -> None:
        self.done += 1
        filled = self.WIDTH * self.done // self.total
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} {text}"
        if self.redraw:
            self.stream.write("\r" + line.ljust(self.shown))
            self.shown = len(line)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def warmup(backends: Sequence[str], dtypes: Sequence[str]) -> int:
    """``python -m convkit warmup``: run the common paths once so that their compilation is cached.

    Each backend runs :data:`WARMUP_CALLS` in each dtype; a backend that
    compiles (numba: Numba's on-disk cache) keeps the result for later
    processes.  Returns 0, or 1 if a call failed (the others still run).
    """
    rng = np.random.default_rng(0)
    progress = _Progress(len(backends) * len(dtypes) * len(WARMUP_CALLS))
    failures, seconds = [], {}
    for name in backends:
        start = time.perf_counter()
        for dtype in dtypes:

            def operand(shape, dtype=dtype):
                values = rng.standard_normal(shape)
                return (values + 1j * values if np.dtype(dtype).kind == "c" else values).astype(
                    dtype
                )

            with convkit.use_backend(name):
                for label, call in WARMUP_CALLS:
                    try:
                        call(operand)
                        outcome = ""
                    except convkit.BackendUnavailableError:
                        outcome = " (not on this backend)"
                    except Exception as error:  # noqa: BLE001 - reported, and the other paths still run
                        failures.append(f"{name} {dtype} {label}: {type(error).__name__}: {error}")
                        outcome = " (FAILED)"
                    progress.step(f"{name} {dtype}: {label}{outcome}")
        seconds[name] = time.perf_counter() - start
    for name, taken in seconds.items():
        print(f"{name}: {', '.join(dtypes)} warmed in {taken:.1f} s")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m convkit`` and the ``convkit`` script."""
    parser = argparse.ArgumentParser(prog="python -m convkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "info", help="list the backends: available or why not, version, threads, device"
    )
    demo_parser = commands.add_parser(
        "demo", help="the conv2d vs convolve_nd comparison, then whether every backend agrees"
    )
    demo_parser.add_argument(
        "--backend",
        action="append",
        help="run on this backend only (repeatable); default: every available one",
    )
    check_parser = commands.add_parser(
        "check",
        help="run the conformance matrix on one backend ('auto': the backend auto picks per case)",
    )
    check_parser.add_argument("backend", help="the backend's name, or 'auto'")
    size = check_parser.add_mutually_exclusive_group()
    size.add_argument(
        "--full",
        action="store_true",
        help="the full matrix (large sizes, denser crossing); default: the fast one",
    )
    size.add_argument(
        "--small",
        action="store_true",
        help="only the fast matrix's small cases (for slow targets: the CUDA simulator)",
    )
    check_parser.add_argument(
        "--worst",
        type=_count,
        default=5,
        metavar="N",
        help="list the N passing cases closest to the bound (default 5)",
    )
    warmup_parser = commands.add_parser(
        "warmup",
        help="compile and cache the common paths now (for images and deployments), with progress",
    )
    warmup_parser.add_argument(
        "--backend",
        action="append",
        help="warm this backend (repeatable); default: every available one on a real device",
    )
    warmup_parser.add_argument(
        "--dtype",
        action="append",
        choices=WARMUP_DTYPES,
        help="warm this dtype (repeatable); default: float32 and float64",
    )
    add_convolve_command(commands)
    arguments = parser.parse_args(argv)
    if arguments.command == "convolve":
        return run_convolve_command(arguments)
    if arguments.command == "info":
        print(info())
        return 1 if environment_problems() else 0
    if arguments.command == "check":
        level = "full" if arguments.full else "small" if arguments.small else "fast"
        return check(arguments.backend, level, arguments.worst)
    backends = {b.name: b for b in convkit.list_backends()}
    available = [name for name, b in backends.items() if b.available]
    if arguments.command == "warmup":
        names = arguments.backend or [name for name in available if not backends[name].simulated]
        for name in names:
            if name not in backends or not backends[name].available:
                why = (
                    f"unavailable: {backends[name].reason}"
                    if name in backends
                    else f"unknown; installed backends: {', '.join(backends)}"
                )
                print(f"error: warmup --backend {name!r}: {why}", file=sys.stderr)
                return 2
        return warmup(names, arguments.dtype or ["float32", "float64"])
    try:
        if arguments.backend:
            names = arguments.backend
        else:  # the reference first: the comparison is shown computed by it
            names = sorted(available, key=lambda name: name != "scipy")
        return 0 if demo(names) else 1
    except (
        convkit.BackendError,
        convkit.WorkingSetTooLargeError,
        EnvironmentVariableError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
