"""Sphinx configuration of convkit's documentation.

Build it, warnings as errors, from the repository root:

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Document the checkout these docs belong to, even where another convkit is installed.
sys.path.insert(0, str(ROOT))

import convkit  # noqa: E402

project = "convkit"
author = "the convkit developers"
copyright = "the convkit developers"
release = version = convkit.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# The API reference lists what each public module exports in ``__all__``, so a
# new export appears in it without editing the docs.
# Regenerated on every build: a page left over from a removed export would be an
# orphan, a warning.
shutil.rmtree(Path(__file__).resolve().parent / "generated", ignore_errors=True)
autosummary_generate = True
autosummary_ignore_module_all = False
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3

# The pages' examples run on the reference backend: every backend gives the same
# results within the rounding tolerance, and the reference needs no compilation.
doctest_global_setup = "import convkit\nconvkit.set_backend('scipy')"
doctest_global_cleanup = "convkit.set_backend(None)"

html_theme = "alabaster"
html_title = f"convkit {release}"
html_theme_options = {"description": "One convolution API over interchangeable engines"}


def _drop_inherited_docstrings(app, what, name, obj, options, lines):
    """A constant without a doc comment would show its type's docstring; show only its value."""
    if what == "data" and not isinstance(obj, type) and obj.__doc__ == type(obj).__doc__:
        lines.clear()


def setup(app):
    app.connect("autodoc-process-docstring", _drop_inherited_docstrings)
