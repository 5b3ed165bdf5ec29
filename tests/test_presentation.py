"""The one presentation layer: report.md, index.html and the dataset card show the same provenance rows.

One fixed provenance (with a key no template names, as a producer may add one) goes through
``annotate run``'s writers and through the card's template; the rows read back from each output
are the same rows, the ones :func:`annotate.presentation.provenance_rows` flattens once.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path

import pytest

from annotate.card import CardFacts, card_provenance, card_view, render_card
from annotate.corpus import gold_sha256
from annotate.evaluate import evaluate
from annotate.figures import chart_png, figure_png
from annotate.htmlreport import write_html_report
from annotate.labels import load_schema
from annotate.presentation import markdown_cell, provenance_rows
from annotate.report import write_reports
from tests.report_fixture import LABELS, gold_docs, predicted_docs

ROOT = Path(__file__).resolve().parents[1]

CHOICE = {
    "held_out": ["hostile"],
    "seen": ["plain", "third"],
    "config": "configs/spancat.cfg",
    "thresholds": {"ACTOR": 0.3},
    "inner_f1": {"configs/spancat.cfg": 0.5},
}


def fixed_source() -> dict:
    return {
        "gold_sha256": gold_sha256(gold_docs()),
        "articles": 3,
        "model": "fixture | a value with a pipe",
        "model_version": "fixture-0123456789ab",  # a key no template names
        "overrides": {},
        "folds": [["hostile"], ["plain", "third"]],
        "nested": True,
        "versions": {"spacy": "3.8.0", "annotate": "0.1.0"},
        "systems_knowledge": {"model": "trained per fold"},
        "choices": [CHOICE],
        "date": "2025-07-01T00:00:00+00:00",
    }


def markdown_provenance(text: str) -> list[tuple[str, str]]:
    """The rows of the ``## Provenance`` table, cells unescaped."""
    table = text.split("## Provenance\n\n| what | value |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(tuple(cells))
    return rows


def html_provenance(page: str) -> list[tuple[str, str]]:
    section = page.split('<h2 id="provenance">', 1)[1].split("</table>", 1)[0]
    return [
        (html.unescape(key), html.unescape(value))
        for key, value in re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", section)
    ]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("evaluation")
    gold, predicted = gold_docs(), predicted_docs()
    source = fixed_source()
    write_reports(folder, {"model": evaluate(gold, predicted, LABELS, bootstrap=0)}, source, title="fixed")
    write_html_report(folder, gold)
    return {
        "report.md": (folder / "report.md").read_text(encoding="utf-8"),
        "index.html": (folder / "index.html").read_text(encoding="utf-8"),
        "card": render_card(replace(card_view(card_facts(), gold), provenance=provenance_rows(source))),
    }


def card_facts() -> CardFacts:
    from annotate.publish import plan_splits

    return CardFacts(
        pretty_name="fixed",
        language="en",
        license="other",
        date="2025-07-01",
        date_source="given with --date",
        gold_name="gold.jsonl",
        gold_sha256=gold_sha256(gold_docs()),
        schema=load_schema(ROOT / "guidelines" / "labels.toml"),
        split_plan=plan_splits(doc.id for doc in gold_docs()),
        include_text=True,
        views=("spans", "tokens"),
        libraries={"spaCy": "3.8.0", "datasets": "4.0.0"},
        tag_columns={label: [f"{label.lower()}_tags"] for label in LABELS},
    )


def test_the_three_outputs_show_the_same_provenance_rows(outputs):
    expected = provenance_rows(fixed_source())
    assert ("model_version", "fixture-0123456789ab") in expected
    assert ("folds", "hostile; plain third") in expected and ("versions", "spacy 3.8.0, annotate 0.1.0") in expected
    assert not {"systems_knowledge", "choices"} & {key for key, _ in expected}  # sections of their own
    assert markdown_provenance(outputs["report.md"]) == expected
    assert markdown_provenance(outputs["card"]) == expected
    assert html_provenance(outputs["index.html"]) == expected


def test_the_card_shows_its_own_provenance_through_the_same_rows():
    facts = card_facts()
    card = render_card(card_view(facts, gold_docs()))
    assert markdown_provenance(card) == provenance_rows(card_provenance(facts))
    assert "| libraries | spaCy 3.8.0, datasets 4.0.0 |" in card


def test_each_fold_choice_is_the_same_row_in_markdown_and_html(outputs):
    assert "| hostile | plain third | spancat.cfg | ACTOR 0.3 | spancat.cfg 0.500 |" in outputs["report.md"]
    cells = "<td>hostile</td><td>plain third</td><td>spancat.cfg</td><td>ACTOR 0.3</td><td>spancat.cfg 0.500</td>"
    assert cells in outputs["index.html"]
    assert "- **model**: trained per fold" in outputs["report.md"]
    assert "<li><strong>model</strong>: trained per fold</li>" in outputs["index.html"]


def test_markdown_cells_escape_what_would_break_the_table():
    assert markdown_cell("a | b\nc") == "a \\| b c"
    assert markdown_cell(3) == "3"


def test_the_navigation_lists_the_sections_of_the_page_in_order(outputs):
    page = outputs["index.html"]
    nav = page.split("<nav>", 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'href="#([a-z]+)"', nav) == re.findall(r'<h2 id="([a-z]+)"', page)
    assert "#curve" not in nav  # no curve.json in the folder: no section, no link


def test_a_figure_is_closed_even_when_drawing_fails():
    import matplotlib.pyplot as plt

    def broken(panels):
        raise ValueError("no data")

    with pytest.raises(ValueError):
        figure_png(broken, rows=1, columns=1, size=(2, 2))
    assert plt.get_fignums() == []
    gold = gold_docs()
    assert chart_png({"model": evaluate(gold, gold, LABELS, bootstrap=0)})[:4] == b"\x89PNG"
    assert plt.get_fignums() == []
