"""The ``annotate`` command line: a thin typer layer over the library's plain functions.

One module per group of commands that belong together, as in ``spacy/cli/``; each command parses
its arguments, calls one plain function a notebook could call too, and renders the result.
Library errors (:class:`AnnotateError`) become one ``Error: …`` line and exit code 1.
"""

from __future__ import annotations

from annotate.cli import (  # noqa: F401  (each registers its commands)
    agreement,
    apply,
    gold,
    labeling,
    plan,
    reports,
    serve,
    training,
)
from annotate.cli._util import app

__all__ = ["app", "main"]


def main() -> None:
    app()
