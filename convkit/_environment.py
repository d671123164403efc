"""The environment variables convkit reads, each through one strict parser.

Every ``CONVKIT_*`` variable of the core is read here, at call time, so that
it may be set after ``import convkit``.  An unset or blank variable means
"use the default"; any other value must parse, or the read fails with an
:class:`EnvironmentVariableError` that names the variable, the value and what
is accepted.  Nothing is guessed: ``CONVKIT_AUTOTUNE=maybe`` is an error, not
False.
"""

from __future__ import annotations

import math
import os
import re

__all__ = [
    "MAX_THREADS",
    "EnvironmentVariableError",
    "environment_problems",
    "read_autotune_cache",
    "read_backend_choice",
    "read_flag",
    "read_memory_limit",
    "read_num_threads",
]

#: The largest thread count convkit accepts, from a setting or the environment.
MAX_THREADS = 2**15

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_BYTES = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?(?:E[0-9]+)?)\s*(?P<unit>[KMGT]?)(?:IB|I|B)?")


class EnvironmentVariableError(ValueError):
    """A ``CONVKIT_*`` environment variable holds a value convkit cannot use."""


def _text(name: str) -> str | None:
    text = os.environ.get(name, "").strip()
    return text or None


def _fail(name: str, text: str, accepted: str) -> EnvironmentVariableError:
    return EnvironmentVariableError(
        f"environment variable {name}={text!r} is not valid: expected {accepted}; "
        f"fix it or unset it (unset means the default)"
    )


def read_num_threads() -> int | None:
    """``CONVKIT_NUM_THREADS``: a whole number from 1 to :data:`MAX_THREADS`, or None when unset."""
    name = "CONVKIT_NUM_THREADS"
    text = _text(name)
    if text is None:
        return None
    if not text.isdecimal() or not 1 <= int(text) <= MAX_THREADS:
        raise _fail(name, text, f"a whole number of threads from 1 to {MAX_THREADS}, e.g. 4")
    return int(text)


def read_memory_limit() -> int | None:
    """``CONVKIT_MEMORY_LIMIT``: a positive, finite byte count, or None when unset.

    A number of bytes with an optional unit K, M, G or T (powers of 1024,
    optionally followed by B or iB): ``8G``, ``512MiB``, ``1.5G``, ``1e9``.
    """
    name = "CONVKIT_MEMORY_LIMIT"
    text = _text(name)
    if text is None:
        return None
    accepted = "a positive byte count such as 8G, 512M, 1.5GiB or 1000000000 (units K, M, G, T)"
    match = _BYTES.fullmatch(text.upper())
    if match is None:
        raise _fail(name, text, accepted)
    value = float(match["number"]) * _UNITS[match["unit"]]
    if not math.isfinite(value) or value < 1:
        raise _fail(name, text, accepted)
    return int(value)


def read_flag(name: str) -> bool | None:
    """A yes/no variable: ``1/true/yes/on`` or ``0/false/no/off`` (any case), None when unset."""
    text = _text(name)
    if text is None:
        return None
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _fail(name, text, "one of " + ", ".join(_TRUE + _FALSE))


def read_backend_choice() -> str | None:
    """``CONVKIT_BACKEND``: a name or comma-separated priority list, None when unset.

    Names are checked against the installed backends where they are used.
    """
    text = _text("CONVKIT_BACKEND")
    if text is not None and any(not part.strip() for part in text.split(",")):
        raise _fail(
            "CONVKIT_BACKEND",
            text,
            "a backend name or a comma-separated list of names with no empty entries, "
            "e.g. 'mine,scipy'",
        )
    return text


def read_autotune_cache() -> str | None:
    """``CONVKIT_AUTOTUNE_CACHE``: a directory for autotune choices, None when unset.

    It need not exist yet (it is created on the first write); an existing
    path that is not a directory is refused.
    """
    text = _text("CONVKIT_AUTOTUNE_CACHE")
    if text is not None and os.path.exists(text) and not os.path.isdir(text):
        raise _fail("CONVKIT_AUTOTUNE_CACHE", text, "a directory (this path is a file)")
    return text


def environment_problems() -> list[str]:
    """The messages of every core ``CONVKIT_*`` variable that does not parse (empty when all do)."""
    problems = []
    for read in (
        read_num_threads,
        read_memory_limit,
        lambda: read_flag("CONVKIT_AUTOTUNE"),
        read_backend_choice,
        read_autotune_cache,
    ):
        try:
            read()
        except EnvironmentVariableError as error:
            problems.append(str(error))
    return problems
