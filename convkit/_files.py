"""``python -m convkit convolve``: convolve arrays on disk, larger than memory, through Dask.

Usage::

    python -m convkit convolve INPUT KERNEL OUTPUT [--mode same|full|valid] [--axes 0,1,2]
        [--boundary fill] [--fillvalue 0] [--nan-policy propagate] [--correlate]
        [--backend NAME] [--chunks 64,64,64 | auto] [--workers N] [--overwrite] [--quiet]

INPUT is a zarr store (a directory, zarr format 2 or 3) or a ``.npy`` file,
read memory-mapped; KERNEL a ``.npy`` file, loaded into memory; OUTPUT a
``.npy`` file when its name ends in ``.npy``, else a zarr store (in INPUT's
zarr format, format 3 for a ``.npy`` INPUT).  The convolution streams through
Dask chunk by chunk: the threaded scheduler, or with ``--workers N`` a local
distributed cluster of N single-threaded worker processes, started and closed
by the command.  ``--mode`` defaults to "same" (OUTPUT has INPUT's shape),
the other options to :func:`convkit.convolve_nd`'s.  ``--chunks`` sets the chunks INPUT is read in (default: the
zarr store's own, Dask's automatic chunking for ``.npy``).

OUTPUT is written into a hidden sibling (``.OUTPUT.partial-PID``) and renamed
into place only once complete: a failure or Ctrl-C removes it, and never
leaves an OUTPUT that looks complete.  An existing OUTPUT is kept unless
``--overwrite`` is given; it is then replaced only after the new one is
complete, and only by one of its kind (a ``.npy`` file by a ``.npy`` file, a
zarr store by a zarr store).

A progress bar goes to stderr (``--quiet``: none), and a summary line to
stdout: shapes, backend, wall time and GB/s of input.  Wrong paths and
arguments are reported as one ``error:`` line with exit status 2; Ctrl-C
exits with status 130.  Dask is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import convkit
from convkit._environment import EnvironmentVariableError

__all__ = [
    "CommandError",
    "add_convolve_command",
    "convolve_files",
    "load_kernel",
    "open_input",
    "run_convolve_command",
    "write_output",
]


class CommandError(Exception):
    """A mistake in the command's paths or arguments: one ``error:`` line, exit status 2."""


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any(
        (path / marker).is_file() for marker in ("zarr.json", ".zarray", ".zgroup")
    )


def parse_chunks(text: str | None, ndim: int) -> tuple[int, ...] | str | None:
    """``--chunks``: None (the input's own), "auto", or one positive size per axis (or one for all)."""
    if text is None or text.strip().lower() == "auto":
        return None if text is None else "auto"
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1 or len(sizes) not in (1, ndim):
        raise CommandError(
            f"--chunks: expected 'auto' or {ndim} positive whole numbers separated by commas "
            f"(one chunk size per axis of INPUT, or one for every axis), got {text!r}"
        )
    return sizes * ndim if len(sizes) == 1 else sizes


def parse_axes(text: str | None) -> tuple[int, ...] | None:
    """``--axes``: axis numbers separated by commas (negative ones count from the end)."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise CommandError(
            f"--axes: expected axis numbers separated by commas, e.g. '0,1,2' or '-2,-1', got {text!r}"
        ) from None


def parse_workers(text: str | None) -> int | None:
    """``--workers``: a whole number, 1 or more."""
    if text is None:
        return None
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise CommandError(
            f"--workers: expected the number of worker processes, a whole number 1 or more, got {text!r}"
        )
    return workers


def parse_fillvalue(text: str) -> float | complex:
    """``--fillvalue``: a real or complex number (``1.5``, ``nan``, ``1+2j``)."""
    try:
        value = complex(text.replace(" ", ""))
    except ValueError:
        raise CommandError(
            f"--fillvalue: expected a number such as 0, 1.5, nan or 1+2j, got {text!r}"
        ) from None
    return value.real if value.imag == 0 else value


class NpyFile:
    """A ``.npy`` file read block by block: each read maps the file, so only its path is pickled
    (a ``numpy.memmap`` would travel to distributed workers as a full copy)."""

    def __init__(self, path: Path) -> None:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        self.path = str(Path(path).resolve())  # worker processes may run elsewhere
        self.shape, self.dtype, self.ndim = mapped.shape, mapped.dtype, mapped.ndim

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r", allow_pickle=False)[key])


class NpyTarget:
    """A ``.npy`` file written region by region by ``dask.array.store``, from any process."""

    def __init__(self, path: Path) -> None:
        self.path = str(Path(path).resolve())

    def __setitem__(self, key, value) -> None:
        mapped = np.load(self.path, mmap_mode="r+", allow_pickle=False)
        mapped[key] = value
        mapped.flush()


def _existing(path: Path, role: str) -> Path:
    if not path.exists():
        raise CommandError(f"{role} {str(path)!r}: no such file or directory")
    if not os.access(path, os.R_OK):
        raise CommandError(f"{role} {str(path)!r}: not readable (check its permissions)")
    return path


def open_input(path: str | os.PathLike, chunks: str | None = None):
    """Open INPUT, a zarr store or a ``.npy`` file, as a lazy ``dask.array.Array``.

    Parameters
    ----------
    path : str or path
        A zarr array (a directory with ``zarr.json`` or ``.zarray``), or a
        ``.npy`` file (memory-mapped; only the blocks being computed are read).
    chunks : str or None
        The ``--chunks`` text: None keeps the zarr store's chunks (Dask's
        automatic chunking for ``.npy``), "auto", or sizes such as "64,64,64".

    Returns
    -------
    array : dask.array.Array
        The input, read lazily.
    zarr_format : int
        The zarr format to write OUTPUT in (2 or 3).

    Raises
    ------
    CommandError
        INPUT is missing, unreadable, of another kind, or ``chunks`` is invalid.
    """
    import dask.array as da
    from dask.base import tokenize

    path = _existing(Path(path), "INPUT")
    if path.is_file() and path.suffix.lower() == ".npy":
        try:
            source = NpyFile(path)
        except (OSError, ValueError) as error:
            raise CommandError(f"INPUT {str(path)!r}: not a readable .npy file: {error}") from None
        chosen = parse_chunks(chunks, source.ndim) or "auto"
        name = "npy-" + tokenize(str(path.resolve()), path.stat().st_mtime_ns, source.shape)
        return da.from_array(source, chunks=chosen, name=name, fancy=False), 3
    if not path.is_dir():
        raise CommandError(
            f"INPUT {str(path)!r}: expected a zarr store (a directory) or a .npy file; "
            "convert other formats to one of these first"
        )
    import zarr

    try:
        stored = zarr.open_array(str(path.resolve()), mode="r")
    except Exception as error:  # noqa: BLE001 - zarr raises many types for what is not an array
        kind = "a zarr group" if _is_group(path) else "not a zarr array"
        raise CommandError(
            f"INPUT {str(path)!r}: {kind} ({type(error).__name__}: {error}); give the path of "
            "a zarr array (for an array inside a group: GROUP/NAME)"
        ) from None
    chosen = parse_chunks(chunks, stored.ndim)
    return da.from_zarr(stored, chunks=chosen), stored.metadata.zarr_format


def _is_group(path: Path) -> bool:
    metadata = path / "zarr.json"
    return (path / ".zgroup").is_file() or (
        metadata.is_file() and '"group"' in metadata.read_text(errors="replace")
    )


def load_kernel(path: str | os.PathLike) -> np.ndarray:
    """Load KERNEL, a ``.npy`` file, into memory (it must fit).

    Raises
    ------
    CommandError
        KERNEL is missing, unreadable, or not a ``.npy`` file.
    """
    path = _existing(Path(path), "KERNEL")
    if not (path.is_file() and path.suffix.lower() == ".npy"):
        raise CommandError(f"KERNEL {str(path)!r}: expected a .npy file (save it with numpy.save)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CommandError(f"KERNEL {str(path)!r}: not a readable .npy file: {error}") from None


def output_kind(path: str | os.PathLike, overwrite: bool) -> str:
    """Check OUTPUT before any work: "npy" or "zarr" by its suffix, in an existing directory,
    absent, or (with ``overwrite``) of the same kind as the file or store it will replace.

    Raises
    ------
    CommandError
        The directory is missing, or OUTPUT exists and may not be replaced.
    """
    path = Path(path)
    kind = "npy" if path.suffix.lower() == ".npy" else "zarr"
    parent = path.parent
    if not parent.is_dir():
        raise CommandError(
            f"OUTPUT {str(path)!r}: the directory {str(parent)!r} does not exist; create it first"
        )
    if not os.access(parent, os.W_OK):
        raise CommandError(f"OUTPUT {str(path)!r}: the directory {str(parent)!r} is not writable")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise CommandError(
                f"OUTPUT {str(path)!r} exists; pass --overwrite to replace it "
                "(once the new one is complete), or choose another path"
            )
        same_kind = path.is_file() if kind == "npy" else _is_zarr_store(path)
        if not same_kind or path.is_symlink():
            expected = "a .npy file" if kind == "npy" else "a zarr store"
            raise CommandError(
                f"OUTPUT {str(path)!r} exists and is not {expected}; --overwrite replaces only "
                "an output of the same kind: remove it yourself if it should go"
            )
    return kind


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _put_in_place(partial: Path, path: Path) -> None:
    """Rename the complete ``partial`` to ``path``; an old ``path`` goes only once the new one is there."""
    if not path.exists():
        os.replace(partial, path)
        return
    if path.is_file() and partial.is_file():
        os.replace(partial, path)  # atomic
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, old)
    try:
        os.replace(partial, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def _regular_chunks(array):
    """Rechunk to what zarr stores: equal chunks along each axis, the last one smaller or equal."""
    regular = all(
        len(set(sizes[:-1])) <= 1 and (len(sizes) < 2 or sizes[-1] <= sizes[0])
        for sizes in array.chunks
    )
    return array if regular else array.rechunk(tuple(max(sizes) for sizes in array.chunks))


def _compute(stored, workers: int | None, threads: int | None, progress: bool) -> float:
    """Run the graph ``stored``; when this returns or raises, no task of it runs any more.

    Returns the seconds spent starting a cluster (0 on the threaded scheduler).
    """
    import dask

    if workers is not None:
        import logging

        from distributed import Client, LocalCluster
        from distributed import progress as distributed_progress

        # The cluster's own INFO lines would bury the progress bar and the summary.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        start = time.perf_counter()
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                # No dashboard; the scheduler's HTTP server on a free port, not a busy 8787.
                dashboard_address=":0",
                scheduler_kwargs={"dashboard": False},
                silence_logs=logging.WARNING,
            ) as cluster,
            Client(cluster) as client,
        ):  # leaving it stops the worker processes, their running tasks too
            starting = time.perf_counter() - start
            future = client.compute(stored)
            if progress:
                with contextlib.redirect_stdout(sys.stderr):  # distributed draws on stdout
                    distributed_progress(future)
                print(file=sys.stderr)
            future.result()
        return starting
    from concurrent.futures import ThreadPoolExecutor

    from dask.diagnostics import ProgressBar

    pool = ThreadPoolExecutor(threads or os.cpu_count() or 1)
    try:
        bar = ProgressBar(out=sys.stderr) if progress else contextlib.nullcontext()
        with bar, dask.config.set(num_workers=pool._max_workers):
            dask.compute(stored, scheduler="threads", pool=pool)
    finally:
        # On Ctrl-C or an error, the running tasks finish and the queued ones are dropped.
        pool.shutdown(wait=True, cancel_futures=True)
    return 0.0


def write_output(
    result,
    path: str | os.PathLike,
    kind: str,
    *,
    zarr_format: int = 3,
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> float:
    """Compute ``result`` chunk by chunk into OUTPUT, through a temporary sibling path.

    Parameters
    ----------
    result : dask.array.Array
        The lazy result.
    path : str or path
        OUTPUT; checked beforehand with :func:`output_kind`.
    kind : {"npy", "zarr"}
        The format to write.
    zarr_format : {2, 3}
        The zarr format of a zarr OUTPUT.
    workers : int or None
        Compute on a local distributed cluster of this many single-threaded
        worker processes, started here and closed before returning; None:
        Dask's threaded scheduler in this process.
    threads : int or None
        Threads of the threaded scheduler (default: the CPU count).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    float
        The seconds spent starting the cluster (0 without ``workers``).

    Notes
    -----
    The temporary ``.NAME.partial-PID`` is removed on any failure, Ctrl-C
    included, once no task writes into it any more (the pool or the
    cluster is shut down first); OUTPUT appears, or replaces the old one,
    only by a rename once every chunk is written.
    """
    import dask.array as da

    path = Path(path).resolve()
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    _remove(partial)  # a leftover of an earlier run of a process with the same id
    try:
        if kind == "npy":
            np.lib.format.open_memmap(partial, mode="w+", dtype=result.dtype, shape=result.shape)
            stored = da.store(result, NpyTarget(partial), lock=False, compute=False)
        else:
            stored = da.to_zarr(
                _regular_chunks(result),
                str(partial),
                compute=False,
                mode="w",
                zarr_format=zarr_format,
            )
        starting = _compute(stored, workers, threads, progress)
        _put_in_place(partial, path)
    except BaseException:
        _remove(partial)
        raise
    return starting


def _backend_summary(backend: str | None, in1, in2, operation: str, options: dict) -> str:
    """The backend choice, and what it runs on one block (auto decides per block)."""
    block_shape = tuple(sizes[0] for sizes in in1.chunks)
    block = np.broadcast_to(np.zeros((), in1.dtype), block_shape)
    try:
        decision = convkit.explain(operation, block, in2, backend=backend, **options)
    except (TypeError, ValueError):  # a block smaller than the kernel in "valid" mode
        return f"backend {backend or 'as configured'}"
    return f"backend {decision.backend} (chosen by {decision.rule}) on {block_shape} blocks"


def convolve_files(
    input_path: str | os.PathLike,
    kernel_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    mode: str = "same",
    axes: tuple[int, ...] | None = None,
    boundary: str = "fill",
    fillvalue: complex = 0,
    nan_policy: str = "propagate",
    correlate: bool = False,
    backend: str | None = None,
    chunks: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> str:
    """Convolve the array in ``input_path`` with the kernel in ``kernel_path`` into ``output_path``.

    The function behind ``python -m convkit convolve`` (see this module's
    description for the formats); the keyword arguments are those of
    :func:`convkit.convolve_nd` and the command's options.

    Returns
    -------
    str
        The one-line summary: shapes, backend, wall time, GB/s of input.

    Raises
    ------
    CommandError
        Bad paths, arguments, shapes or dtypes, found before anything is
        written (convkit's own TypeError and ValueError messages).
    convkit.BackendError, convkit.WorkingSetTooLargeError
        The backend or memory budget refuses the problem, before or while
        computing; OUTPUT is then not written.
    """
    start = time.perf_counter()
    in1, zarr_format = open_input(input_path, chunks)
    in2 = load_kernel(kernel_path)
    kind = output_kind(output_path, overwrite)
    operation = "correlate_nd" if correlate else "convolve_nd"
    options = dict(
        mode=mode, axes=axes, boundary=boundary, fillvalue=fillvalue, nan_policy=nan_policy
    )
    try:  # convkit checks the arguments, shapes and dtypes here, before anything runs
        result = getattr(convkit, operation)(in1, in2, backend=backend, **options)
    except (TypeError, ValueError) as error:
        raise CommandError(str(error)) from None
    chosen = _backend_summary(backend, in1, in2, operation, options)
    starting = write_output(
        result, output_path, kind, zarr_format=zarr_format, workers=workers, progress=progress
    )
    seconds = time.perf_counter() - start
    where = (
        f"{workers} worker processes (started in {starting:.1f} s)"
        if workers
        else f"{os.cpu_count()} threads"
    )
    return (
        f"{output_path}: {result.shape} {result.dtype} ({kind}) = {operation}({input_path} "
        f"{in1.shape} {in1.dtype}, {kernel_path} {in2.shape} {in2.dtype}, mode={mode!r}); "
        f"{chosen}; {where}; {seconds:.2f} s, {in1.nbytes / seconds / 1e9:.3g} GB/s of input"
    )


def add_convolve_command(commands) -> None:
    """Add the ``convolve`` subcommand to the subparsers ``commands``."""
    parser = commands.add_parser(
        "convolve",
        help="convolve a zarr store or .npy file (larger than memory) with a .npy kernel, through Dask",
        description=(
            "Convolve INPUT with KERNEL into OUTPUT chunk by chunk through Dask, for arrays "
            "larger than memory; a progress bar on stderr, a summary line on stdout."
        ),
        epilog=(
            "INPUT: a zarr store (directory) or a .npy file (memory-mapped). KERNEL: a .npy file. "
            "OUTPUT: a .npy file when its name ends in .npy, else a zarr store; written to a "
            "temporary sibling and renamed into place once complete."
        ),
    )
    parser.add_argument("input", metavar="INPUT", help="zarr store or .npy file")
    parser.add_argument("kernel", metavar="KERNEL", help=".npy file, loaded into memory")
    parser.add_argument("output", metavar="OUTPUT", help="a .npy path, or a zarr store path")
    parser.add_argument(
        "--mode", default="same", help="same (default: the shape of INPUT), full or valid"
    )
    parser.add_argument(
        "--axes", help="axes to convolve, separated by commas (e.g. 1,2 or -2,-1); default: all"
    )
    parser.add_argument(
        "--boundary",
        default="fill",
        help="fill (default), wrap, symm, mirror or nearest: how INPUT continues past its ends",
    )
    parser.add_argument(
        "--fillvalue", default="0", help="the value outside INPUT with --boundary fill (default 0)"
    )
    parser.add_argument(
        "--nan-policy",
        default="propagate",
        help="propagate (default), interpolate or fill: what NaN and inf samples of INPUT do",
    )
    parser.add_argument(
        "--correlate", action="store_true", help="cross-correlate (correlate_nd) instead"
    )
    parser.add_argument(
        "--backend", help="run every block on this backend (default: the configured choice, auto)"
    )
    parser.add_argument(
        "--chunks",
        help="chunk sizes INPUT is read in, e.g. 64,64,64 or auto "
        "(default: the zarr store's chunks; auto for .npy)",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        help="run on a local distributed cluster of N single-threaded processes "
        "(default: threads in this process)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing OUTPUT once the new one is complete",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_convolve_command(arguments: argparse.Namespace) -> int:
    """Run the parsed ``convolve`` command; the exit status (2 for the user's mistakes)."""
    try:
        options = dict(
            mode=arguments.mode,
            axes=parse_axes(arguments.axes),
            boundary=arguments.boundary,
            fillvalue=parse_fillvalue(arguments.fillvalue),
            nan_policy=arguments.nan_policy,
            correlate=arguments.correlate,
            backend=arguments.backend,
            chunks=arguments.chunks,
            workers=parse_workers(arguments.workers),
            overwrite=arguments.overwrite,
            progress=not arguments.quiet,
        )
        summary = convolve_files(arguments.input, arguments.kernel, arguments.output, **options)
    except KeyboardInterrupt:
        print(f"interrupted: OUTPUT {arguments.output!r} not written", file=sys.stderr)
        return 130
    except (
        CommandError,
        convkit.BackendError,
        convkit.WorkingSetTooLargeError,
        EnvironmentVariableError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: writing OUTPUT {arguments.output!r} failed: {error}", file=sys.stderr)
        return 1
    print(summary)
    return 0
