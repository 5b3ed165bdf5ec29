"""The ``annotate`` command line: a thin typer layer over the library's plain functions.

One module per group of commands that belong together, as in ``spacy/cli/``; each command parses
its arguments, calls one plain function a notebook could call too, and renders the result.
Library errors (:class:`AnnotateError`) become one ``Error: …`` line and exit code 1.
"""

from __future__ import annotations

from annotate.cli import agreement, apply, gold, labeling, training  # noqa: F401  (each registers its commands)
from annotate.cli._util import app

__all__ = ["app", "main"]


def main() -> None:
    app()
