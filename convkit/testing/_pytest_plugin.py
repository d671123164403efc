"""pytest options for the conformance matrix (registered as the ``convkit`` plugin).

``--convkit-backend NAME`` (repeatable) picks the backends the matrix runs on
(default: every available one); ``--convkit-full`` runs the full matrix.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("convkit", "convkit conformance matrix")
    group.addoption(
        "--convkit-backend",
        action="append",
        default=[],
        metavar="NAME",
        help="run the conformance matrix on this backend (repeatable; default: all available)",
    )
    group.addoption(
        "--convkit-full",
        action="store_true",
        default=False,
        help="run the full matrix (large sizes, denser crossing) instead of the fast one",
    )


def conformance_backends(config: pytest.Config) -> list[str]:
    """The backends chosen on the command line, or every available one."""
    import convkit

    chosen = config.getoption("--convkit-backend")
    if chosen:
        return [name for item in chosen for name in item.split(",")]
    return [info.name for info in convkit.list_backends() if info.available]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames:
        return
    from convkit.testing import generate_cases

    level = "full" if metafunc.config.getoption("--convkit-full") else "fast"
    backends = conformance_backends(metafunc.config)
    cases = generate_cases(level)
    metafunc.parametrize(
        ("conformance_backend", "conformance_case"),
        [(backend, case) for backend in backends for case in cases],
        ids=[f"{backend}:{case.id}" for backend in backends for case in cases],
    )


@pytest.fixture
def conformance_backend_names(request: pytest.FixtureRequest) -> list[str]:
    """Every backend the matrix runs on in this session."""
    return conformance_backends(request.config)
