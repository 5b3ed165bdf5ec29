"""Text from a file, a server or an argument is printed as it is: never read as terminal markup.

An article id, a project title or a path holding ``[/]``, ``[bold]`` or ``:smile:`` once crashed
commands with ``rich.errors.MarkupError`` or restyled their output. Both consoles of the command
line print strings literally (annotate/cli/_util.py); these tests hold every command that prints
tables or paths to it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from annotate.cli import app
from annotate.cli._util import console
from annotate.corpus import write_gold
from annotate.records import AnnotatedDoc, Span
from tests.conftest import ROOT

runner = CliRunner()
TEXT = "Hamas said 57,000 people died."
# Pieces rich would read as markup, emoji codes or highlighting, glued at random.
MARKUP = ["[/]", "[bold]", "[/bold]", "[red on blue]", "[link=http://x]", "\\[", "[", "]", ":smile:", "[b]x[/b]", "42"]
markup_text = st.lists(st.sampled_from([*MARKUP, "a", " ", "é", "😀"]), min_size=1, max_size=8).map("".join)


def _no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "MarkupError" not in result.output


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    (root / "guidelines").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.annotate]\nproject = "News spans"\n', encoding="utf-8")
    for name in ("labels.toml", "GUIDELINES.md"):
        shutil.copy(ROOT / "guidelines" / name, root / "guidelines" / name)
    monkeypatch.chdir(root)
    monkeypatch.setenv("COLUMNS", "400")  # rich's width: a table cell is never wrapped in these tests
    return root


@given(text=markup_text)
def test_the_consoles_print_any_string_exactly_as_it_is(text):
    with console.capture() as captured:
        console.print(text, soft_wrap=True)
    assert captured.get() == text + "\n"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(article_id=markup_text.filter(lambda s: s.strip()))
def test_gold_stats_prints_an_article_id_of_any_markup_as_it_is(project, article_id):
    gold = project / "gold" / "[bold]g[/].jsonl"
    write_gold(gold, [AnnotatedDoc(article_id, TEXT, (Span.from_offsets(TEXT, 0, 5, "ACTOR"),))])
    result = runner.invoke(app, ["gold", "stats", str(gold)], terminal_width=400)
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert article_id.strip() in result.output


def test_evaluate_and_publish_print_paths_with_markup_as_they_are(project):
    doc = AnnotatedDoc("[/]d", TEXT, (Span.from_offsets(TEXT, 0, 5, "ACTOR"),))
    write_gold(project / "gold.jsonl", [doc])
    out = project / "[bold]reports[/]"
    arguments = ["evaluate", "gold.jsonl", "--gold", "gold.jsonl", "--out", str(out), "--bootstrap", "0"]
    result = runner.invoke(app, arguments, terminal_width=400)
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert f"metrics: {out / 'metrics.json'}" in result.output
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["systems"]["predictions"]["articles"] == [
        "[/]d"
    ]

    published = ":smile: [/]pub"  # relative: the table's title stays on one line
    result = runner.invoke(app, ["publish", published, "--gold", "gold.jsonl"], terminal_width=400)
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert f"Published {published}" in result.output
