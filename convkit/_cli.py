"""``python -m convkit``: ``info`` (the backend table), ``demo`` (the seed comparison), ``check``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

import convkit
from convkit._environment import environment_problems

__all__ = ["main"]


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def info() -> str:
    """The backend table of ``python -m convkit info``."""
    rows = []
    for backend in convkit.list_backends():
        status = "yes" + (" (simulated)" if backend.simulated else "") if backend.available else f"no: {backend.reason}"
        rows.append([
            backend.name,
            status,
            backend.version or "-",
            ",".join(backend.operations) or "-",
            ",".join(backend.dtypes) or "-",
            "-" if backend.threads is None else str(backend.threads),
            backend.device or "-",
        ])
    header = ["backend", "available", "version", "operations", "dtypes", "threads", "device"]
    problems = environment_problems()
    if problems:
        settings = (f"convkit {convkit.__version__}, numpy {np.__version__}; settings unusable "
                    "until the environment is fixed:\n" + "\n".join(f"error: {p}" for p in problems))
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


def _or_reference(name: str, call):
    """``call()`` on the current backend; if it cannot do the problem, on the reference, saying so."""
    try:
        return call()
    except convkit.BackendUnavailableError as error:
        reason = str(error).split(f"{name}: ", 1)[-1]
        print(f"({name} cannot do this one: {reason}; computed by the reference backend)")
        with convkit.use_backend("scipy"):
            return call()


def demo(backends: Sequence[str]) -> None:
    """The worked comparison of conv2d (Theano) and convolve_nd (scipy)."""
    image = np.arange(25.0).reshape(5, 5)
    kernel = np.arange(9.0).reshape(3, 3)
    batch = np.arange(2 * 3 * 5 * 5, dtype=float).reshape(2, 3, 5, 5)
    filters = np.arange(27.0).reshape(1, 3, 3, 3)
    print("image = np.arange(25.0).reshape(5, 5); kernel = np.arange(9.0).reshape(3, 3)")
    print("x = np.arange(150.0).reshape(2, 3, 5, 5); w = np.arange(27.0).reshape(1, 3, 3, 3)")
    for name in backends:
        print(f"\n=== backend {name!r} " + "=" * 60)
        with convkit.use_backend(name):
            print("\n1. One image, one filter: both operations agree.")
            for mode in ("full", "valid"):
                theano_style = convkit.conv2d(image[None, None], kernel[None, None], border_mode=mode)
                scipy_style = convkit.convolve_nd(image, kernel, mode=mode)
                _show(f"conv2d(image[None, None], kernel[None, None], border_mode={mode!r})", theano_style)
                _show(f"convolve_nd(image, kernel, mode={mode!r})", scipy_style)
                print("equal:", bool(np.allclose(theano_style[0, 0], scipy_style)))

            print("\n2. Batch 2 x 3 channels: the shapes differ.")
            summed = convkit.conv2d(batch, filters, border_mode="full")
            everywhere = _or_reference(name, lambda: convkit.convolve_nd(batch, filters, mode="full"))
            print(f"conv2d(x, w, 'full').shape      = {summed.shape}   "
                  "(sums over channels per image and filter)")
            print(f"convolve_nd(x, w, 'full').shape = {everywhere.shape}   "
                  "(convolves over every axis, channels and batch too)")
            per_channel_sum = sum(convkit.convolve_nd(batch[:, c], filters[0, c][None], mode="full")
                                  for c in range(3))
            print("conv2d(x, w)[:, 0] == sum over c of convolve_nd(x[:, c], w[0, c]):",
                  bool(np.allclose(summed[:, 0], per_channel_sum)))
            _show("conv2d(x, w, 'full')[0, 0, :3, :3]", summed[0, 0, :3, :3])

            print("\n3. Channel mismatch: conv2d refuses filters made for 1 channel.")
            try:
                convkit.conv2d(batch, kernel[None, None])
            except ValueError as error:
                print(f"ValueError: {error}")

            print("\n4. Filters without channels.")
            try:
                convkit.conv2d(batch, kernel)
            except ValueError as error:
                print(f"ValueError: {error}")
            depthwise = convkit.conv2d(batch, np.broadcast_to(kernel, (3, 1, 3, 3)),
                                       border_mode="full", num_groups=3)
            each_channel = convkit.convolve_nd(batch, kernel[None, None], mode="full", axes=(-2, -1))
            print(f"per channel, no sum: conv2d(x, kernel as (3, 1, 3, 3), num_groups=3) {depthwise.shape}"
                  f" == convolve_nd(x, kernel[None, None], axes=(-2, -1)) {each_channel.shape}:",
                  bool(np.allclose(depthwise, each_channel)))


def check(backend: str, level: str, worst: int) -> int:
    """``python -m convkit check``: 0 when every case passes, 1 on failures, 2 on errors."""
    from convkit.testing import check_backend, generate_cases

    problems = environment_problems()
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        report = check_backend(backend, generate_cases(level))
    except convkit.BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.format(worst))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m convkit`` and the ``convkit`` script."""
    parser = argparse.ArgumentParser(prog="python -m convkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="list the backends: available or why not, version, threads, device")
    demo_parser = commands.add_parser("demo", help="the conv2d vs convolve_nd comparison, on every backend")
    demo_parser.add_argument("--backend", action="append",
                             help="run on this backend only (repeatable); default: every available one")
    check_parser = commands.add_parser(
        "check", help="run the conformance matrix on one backend")
    check_parser.add_argument("backend", help="the backend's name")
    check_parser.add_argument("--full", action="store_true",
                              help="the full matrix (large sizes, denser crossing); default: the fast one")
    check_parser.add_argument("--small", action="store_true",
                              help="only the fast matrix's small cases (for slow targets: the CUDA simulator)")
    check_parser.add_argument("--worst", type=int, default=5, metavar="N",
                              help="list the N passing cases closest to the bound (default 5)")
    arguments = parser.parse_args(argv)
    if arguments.command == "info":
        print(info())
        return 1 if environment_problems() else 0
    if arguments.command == "check":
        level = "full" if arguments.full else "small" if arguments.small else "fast"
        return check(arguments.backend, level, arguments.worst)
    names = arguments.backend or [b.name for b in convkit.list_backends() if b.available]
    try:
        demo(names)
    except convkit.BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
