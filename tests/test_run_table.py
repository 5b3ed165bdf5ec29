"""A fresh ``annotate run`` gives the table docs/training.md documents, every figure of it.

The fresh run is the real command in a subprocess, its reports in a temporary folder, with the
repository's gold, schema, patterns and config (``bench/run_table.py``, which also regenerates
the documented block). It takes about 3 minutes on 2 cores, so it is marked ``slow`` and runs
where ``CI`` is set (``.ci/run``); elsewhere it skips, saying how to run it. The comparison
itself is checked here on a small evaluation, fast: a changed figure fails with its diff.
"""

from __future__ import annotations

import importlib.util
import io
import os

import pytest
from rich.console import Console

from annotate.cli.training import _score_tables
from annotate.evaluate import evaluate
from annotate.records import AnnotatedDoc, Span
from annotate.report import metrics_document
from tests.conftest import ROOT


def _script():
    """bench/run_table.py, the script that regenerates the documented block (bench/ holds scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("run_table", ROOT / "bench" / "run_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_table = _script()
BEGIN, DOC, END = run_table.BEGIN, run_table.DOC, run_table.END
check, documented_block, fresh_run = run_table.check, run_table.documented_block, run_table.fresh_run
printed_rows, replace_block, table_block = run_table.printed_rows, run_table.replace_block, run_table.table_block
LABELS = ["ACTOR", "FIGURE"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _small_run() -> tuple[dict, str]:
    """metrics.json and the printed tables of a small evaluation of two systems, as `annotate run` makes them."""
    text = "Hamas said 57 people died. Israel said 80 per cent agreed."

    def spans(*found: tuple[str, str]) -> tuple[Span, ...]:
        return tuple(
            Span(text.index(phrase), text.index(phrase) + len(phrase), label, phrase) for phrase, label in found
        )

    gold = [AnnotatedDoc("a", text, spans(("Hamas", "ACTOR"), ("57 people", "FIGURE"), ("Israel", "ACTOR")))]
    rules = [AnnotatedDoc("a", text, spans(("Hamas", "ACTOR"), ("57", "FIGURE")))]
    model = [AnnotatedDoc("a", text, spans(("Israel", "ACTOR"), ("80 per cent", "FIGURE")))]
    evaluations = {
        name: evaluate(gold, docs, LABELS, bootstrap=50) for name, docs in [("rules", rules), ("model", model)]
    }
    printed = io.StringIO()
    console = Console(file=printed, width=200)
    for table in _score_tables(evaluations):
        console.print(table)
    return metrics_document(evaluations, {}), printed.getvalue()


def _doc(block: str) -> str:
    return f"# Training\n\nThe table:\n\n{block}\n\nAfter it.\n"


def test_the_block_holds_every_printed_row_and_agrees_with_the_run():
    metrics, printed = _small_run()
    block = table_block(metrics)
    assert len(printed_rows(metrics)) == 2 * 2 * 4  # schemas × systems × (2 labels, micro, macro)
    assert all(row[-1] for row in printed_rows(metrics)), "every row has its interval"
    assert check(metrics, printed, _doc(block)) == ""
    assert documented_block(replace_block(_doc(f"{BEGIN}\nan older table\n{END}"), block)) == block


def test_a_changed_documented_figure_fails_with_a_diff_naming_it():
    metrics, printed = _small_run()
    block = table_block(metrics)
    row = next(line for line in block.splitlines() if line.startswith("| strict | rules | micro |"))
    changed = row.replace("| 0.40 |", "| 0.41 |", 1)
    assert changed != row
    problems = check(metrics, printed, _doc(block.replace(row, changed)))
    assert f"-{changed}" in problems and f"+{row}" in problems  # against metrics.json
    assert "-strict | rules | micro | 3 | 2 | 0.50 | 0.33 | 0.41" in problems  # against what the run printed


def test_a_figure_the_run_printed_differently_fails():
    metrics, printed = _small_run()
    lines = printed.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rules", "micro"])  # strict comes first
    lines[at] = lines[at].replace("0.40", "0.41", 1)
    problems = check(metrics, "\n".join(lines), _doc(table_block(metrics)))
    assert "+strict | rules | micro | 3 | 2 | 0.50 | 0.33 | 0.41" in problems
    assert "documented (docs/training.md against metrics.json)" not in problems


def test_a_doc_without_the_block_is_refused():
    with pytest.raises(ValueError, match="must hold the run table once"):
        documented_block("# Training\n\nno table here\n")


@pytest.mark.slow
@pytest.mark.longest  # minutes alone: handed out first, beside the rest
def test_a_fresh_annotate_run_gives_the_documented_table(tmp_path):
    if not _in_ci():
        pytest.skip(
            "a fresh `annotate run` takes about 3 minutes; it runs where CI is set "
            "(CI=1 python -m pytest tests/test_run_table.py); regenerate the table with python bench/run_table.py"
        )
    metrics, printed = fresh_run(tmp_path)
    problems = check(metrics, printed, DOC.read_text(encoding="utf-8"))
    assert not problems, (
        "docs/training.md's run table differs from a fresh `annotate run` (regenerate it with "
        f"`python bench/run_table.py` if the change is meant):\n{problems}"
    )
