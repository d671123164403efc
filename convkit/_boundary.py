"""Boundary rules: how a signal continues past its ends, natively or in a padded copy.

A normalized problem carries its rule in ``problem.boundary``: ``"fill"``
(zeros; a non-zero ``fillvalue`` is already written into a padded copy by
the core) or one of :data:`RULES`.  A backend whose
:attr:`~convkit.plugin.Capabilities.boundaries` names the rule receives the
problem as it is and reads the extension itself (index mapping, no copy);
any other backend runs behind :class:`Extended`, which hands it the same
problem on an explicitly padded copy of the signal with zero fill, so every
backend, a third party's included, computes every rule.

The extension of a signal of length ``n`` at any integer position ``i`` (a
kernel longer than the signal repeats the rule, as ``numpy.pad`` does):

* ``"wrap"``: ``i mod n``;
* ``"symm"``: ``p = i mod 2n``, then ``p`` if ``p < n`` else ``2n - 1 - p``;
* ``"mirror"``: ``p = i mod (2n - 2)``, then ``p`` if ``p < n`` else
  ``2n - 2 - p`` (position 0 when ``n == 1``);
* ``"nearest"``: ``i`` clipped to ``[0, n - 1]``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from convkit._backend import Delegating, reported_working_set
from convkit._problems import ConvolveProblem, ConvProblem, Problem

__all__ = [
    "PAD_MODES",
    "RULES",
    "Extended",
    "explicit_boundary",
    "extension_index",
    "needs_padding",
]

#: The rules other than zero fill, and the numpy.pad mode of each.
PAD_MODES = {"wrap": "wrap", "symm": "symmetric", "mirror": "reflect", "nearest": "edge"}
RULES = frozenset(PAD_MODES)
# What the padded copy costs "auto": bytes read plus written per second, as numpy.pad made a
# 4100^2 float32 copy (64 MiB each way) in about 11 ms on the 2-core VM (bench/NOTES.md,
# "Boundaries").
COPY_BYTES_PER_SECOND = 12e9


def extension_index(positions: np.ndarray, size: int, boundary: str) -> np.ndarray:
    """The sample of a signal of length ``size`` that each position reads under ``boundary``.

    Parameters
    ----------
    positions : numpy.ndarray of int
        Any integer positions, inside or outside ``[0, size)``.
    size : int
        The signal's length, >= 1.
    boundary : {"wrap", "symm", "mirror", "nearest"}
        The rule (``"symmetric"`` is not accepted here: the core normalizes it
        to ``"symm"``).

    Returns
    -------
    numpy.ndarray of int64
        Indices in ``[0, size)``; ``signal[extension_index(p, len(signal), rule)]``
        is ``numpy.pad``'s extension of ``signal`` by the rule at ``p``.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import extension_index
    >>> extension_index(np.arange(-3, 7), 4, "symm")
    array([2, 1, 0, 0, 1, 2, 3, 3, 2, 1])
    >>> extension_index(np.arange(-3, 7), 4, "mirror")
    array([3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
    """
    positions = np.asarray(positions, dtype=np.int64)
    if boundary == "wrap":
        return positions % size
    if boundary == "nearest":
        return np.clip(positions, 0, size - 1)
    if boundary == "symm":
        folded = positions % (2 * size)
        return np.where(folded < size, folded, 2 * size - 1 - folded)
    if boundary == "mirror":
        if size == 1:
            return np.zeros_like(positions)
        folded = positions % (2 * size - 2)
        return np.where(folded < size, folded, 2 * size - 2 - folded)
    raise ValueError(f"boundary must be one of {sorted(RULES)}, got {boundary!r}")


def _widths(problem: Problem) -> list[tuple[int, int]]:
    """How far the signal is extended before and after, per axis of the signal."""
    if isinstance(problem, ConvProblem):
        return [(0, 0), (0, 0), *problem.padding]
    widths = [(0, 0)] * problem.in1.ndim
    for axis in problem.axes:
        # Output i of the full result reads in1's extension at i - j for the taps j < m.
        reach = problem.in2.shape[axis] - 1
        first = problem.output_start[axis] - reach
        last = problem.output_start[axis] + problem.output_shape[axis] - 1
        widths[axis] = (max(0, -first), max(0, last - (problem.in1.shape[axis] - 1)))
    return widths


def needs_padding(backend, problem: Problem) -> bool:
    """Whether ``problem``'s boundary must reach ``backend`` as an explicit padded copy."""
    return problem.boundary != "fill" and problem.boundary not in backend.capabilities.boundaries


def _padded(problem: Problem, signal: np.ndarray) -> Problem:
    """The zero-fill problem equal to ``problem`` on ``signal``, its signal extended."""
    if isinstance(problem, ConvProblem):
        spatial = len(problem.padding)
        return dataclasses.replace(
            problem, input=signal, padding=((0, 0),) * spatial, boundary="fill"
        )
    widths = _widths(problem)
    start = tuple(start + before for start, (before, _) in zip(problem.output_start, widths))
    return dataclasses.replace(problem, in1=signal, output_start=start, boundary="fill")


def explicit_boundary(problem: Problem, *, shape_only: bool = False) -> Problem:
    """``problem`` on a padded copy of its signal, with zero fill: what any backend can run.

    The signal (``in1``, or a conv's ``input``) is extended by the rule as
    far as the outputs reach, with ``numpy.pad``; the result is the same
    problem whose signal needs no extension (``boundary == "fill"``, a conv's
    ``padding`` all zero).  A problem with zero fill comes back as it is.

    Parameters
    ----------
    problem : ConvProblem or ConvolveProblem
        A normalized host problem.
    shape_only : bool
        Give the padded problem with a read-only stand-in signal of the padded
        shape that takes no memory (no copy is made): for questions answered
        from shapes, such as a backend's memory or time estimate.

    Returns
    -------
    ConvProblem or ConvolveProblem

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import explicit_boundary, normalize_convolve
    >>> problem = normalize_convolve(np.arange(4.0), np.ones(3), "same", boundary="wrap")
    >>> padded = explicit_boundary(problem)
    >>> padded.in1, padded.boundary, padded.output_start, padded.output_shape
    (array([3., 0., 1., 2., 3., 0.]), 'fill', (2,), (4,))
    """
    if problem.boundary == "fill":
        return problem
    signal = problem.input if isinstance(problem, ConvProblem) else problem.in1
    widths = _widths(problem)
    if shape_only:
        shape = tuple(size + before + after for size, (before, after) in zip(signal.shape, widths))
        return _padded(problem, np.broadcast_to(np.zeros((), dtype=signal.dtype), shape))
    padded = np.pad(signal, widths, mode=PAD_MODES[problem.boundary])
    padded.flags.writeable = False
    return _padded(problem, padded)


def _padded_bytes(problem: Problem) -> int:
    """The size of the padded copy of ``problem``'s signal."""
    padded = explicit_boundary(problem, shape_only=True)
    signal = padded.input if isinstance(padded, ConvProblem) else padded.in1
    return math.prod(signal.shape) * padded.dtype.itemsize


class Extended(Delegating):
    """A backend that does not extend the problem's boundary itself, run on a padded copy.

    What it says about a problem is what the backend says about the padded
    one; its working set grows by the padded copy, and its time by making it.
    """

    def why_not(self, problem: Problem) -> str | None:
        return self.backend.why_not(explicit_boundary(problem, shape_only=True))

    def working_set_bytes(self, problem: Problem) -> int:
        return reported_working_set(
            self.backend, explicit_boundary(problem, shape_only=True)
        ) + _padded_bytes(problem)

    def method(self, problem: Problem) -> str:
        return self.backend.method(explicit_boundary(problem, shape_only=True))

    def estimate_seconds(self, problem: Problem) -> float | None:
        estimate = self.backend.estimate_seconds(explicit_boundary(problem, shape_only=True))
        if estimate is None:
            return None
        return estimate + 2 * _padded_bytes(problem) / COPY_BYTES_PER_SECOND

    def conv(self, problem: ConvProblem) -> np.ndarray:
        return self.backend.conv(explicit_boundary(problem))

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        return self.backend.convolve_nd(explicit_boundary(problem))

    def describe(self, problem: Problem) -> str:
        """How ``problem``'s boundary is handled."""
        return (
            f"{self.name} does not extend boundary={problem.boundary!r} itself: it runs on a "
            "padded copy of the signal"
        )

    def __repr__(self) -> str:
        return f"<convkit backend {self.name!r}, on a padded copy>"
