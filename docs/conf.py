"""Sphinx configuration for gridgraph's documentation (``make docs``)."""
import os
import sys

# Document the checkout these docs sit in, whichever gridgraph the environment has installed.
sys.path.insert(0, os.path.abspath(".."))

project = "gridgraph"
author = "gridgraph developers"
copyright = "2026, gridgraph developers"

import gridgraph  # noqa: E402

release = gridgraph.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the code's docstrings use Google style (Args: / Returns:)
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Docstrings: Google style through napoleon; no NumPy sections in this code.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"gridgraph {release}"
