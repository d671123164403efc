"""The cross-backend equivalence matrix (docs/conformance.rst) over every installed backend.

The fast matrix runs by default; ``python -m pytest --convkit-full`` runs the full one,
``--convkit-backend NAME`` restricts it to one backend.
"""

from convkit.testing.test_conformance import test_conformance, test_conformance_properties

__all__ = ["test_conformance", "test_conformance_properties"]
