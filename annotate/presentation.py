"""One presentation layer: an evaluation (or a dataset card) as plain rows, rendered by Jinja2 templates.

``report.md``, ``index.html`` and the dataset card are templates in ``annotate/templates`` over the
same rows: provenance is flattened once here (every key, so a key added by any producer shows up
in all three without a template change), each fold's nested choice is one row here, and Markdown
table cells are escaped by one filter. Only this module imports Jinja2: ``*.html.j2`` templates
are rendered with autoescape, so article text never reaches a page unescaped; ``*.md.j2`` without.
Nothing here reads or writes files or prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from annotate.evaluate import SCHEMAS, Evaluation

SECTIONS = ("systems_knowledge", "choices")  # provenance keys shown as sections of their own, not table rows
REPORT_SCHEMAS = SCHEMAS
ERRORS_IN_MARKDOWN = 40
REPORT_TEMPLATE = "report.md.j2"


def provenance_rows(source: Mapping) -> list[tuple[str, str]]:
    """Every provenance key but :data:`SECTIONS` as a ``(what, value)`` row, in the order given.

    A mapping becomes ``key value, key value``; a list becomes ``item; item`` with an inner list
    joined by spaces (a fold's articles).
    """
    rows = []
    for key, value in source.items():
        if key in SECTIONS:
            continue
        if isinstance(value, Mapping):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(" ".join(map(str, item)) if isinstance(item, list) else str(item) for item in value)
        rows.append((str(key), str(value)))
    return rows


@dataclass(frozen=True)
class ChoiceRow:
    """One outer fold's nested choice, as table cells."""

    held_out: str
    seen: str
    config: str
    thresholds: str
    inner_f1: str


def choice_rows(choices: Sequence[Mapping]) -> list[ChoiceRow]:
    """Each fold's choice (``FoldChoice.to_dict()``): articles, config file name, thresholds, inner F1s."""
    return [
        ChoiceRow(
            held_out=" ".join(choice["held_out"]),
            seen=" ".join(choice["seen"]),
            config=Path(choice["config"]).name,
            thresholds=", ".join(f"{label} {value:g}" for label, value in choice["thresholds"].items()),
            inner_f1=", ".join(
                f"{Path(config).name} {f1:.3f}" for config, f1 in (choice.get("inner_f1") or {}).items()
            ),
        )
        for choice in choices
    ]


@dataclass(frozen=True)
class EvaluationView:
    """What every report of an evaluation shows, computed once for all of them."""

    title: str
    provenance: list[tuple[str, str]]
    knowledge: dict[str, str]  # system → what it knows when it predicts a held-out article
    choices: list[ChoiceRow]
    systems: dict[str, Evaluation]


def evaluation_view(evaluations: Mapping[str, Evaluation], source: Mapping, *, title: str) -> EvaluationView:
    return EvaluationView(
        title=title,
        provenance=provenance_rows(source),
        knowledge=dict(source.get("systems_knowledge") or {}),
        choices=choice_rows(source.get("choices") or []),
        systems=dict(evaluations),
    )


def markdown_report(view: EvaluationView, *, chart: str = "") -> str:
    """``report.md``: provenance, choices, and per system every schema's scores, confusion and first errors."""
    return render(REPORT_TEMPLATE, view=view, chart=chart, schemas=REPORT_SCHEMAS, errors_shown=ERRORS_IN_MARKDOWN)


def render(template: str, **context) -> str:
    """``template`` from ``annotate/templates`` filled with ``context``; HTML templates escape what they insert."""
    return _environment().get_template(template).render(**context)


def markdown_cell(value: object) -> str:
    """A value as one Markdown table cell: a ``|`` would end the cell and a newline the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def score(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def bracketed_interval(bounds: Sequence[float]) -> str:
    """`` [0.33, 0.75]`` after a score in Markdown; nothing when no interval was computed."""
    low, high = bounds
    return "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"


def interval_range(bounds: Sequence[float]) -> str:
    """``0.33–0.75`` in a column of its own (the HTML table); empty when no interval was computed."""
    low, high = bounds
    return "" if math.isnan(low) else f"{low:.2f}–{high:.2f}"


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("annotate", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("md.j2",), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,  # a template renders as its file reads; a partial ends with its last line's newline
    )
    environment.filters.update(
        markdown_cell=markdown_cell,
        score=score,
        bracketed_interval=bracketed_interval,
        interval_range=interval_range,
    )
    return environment
