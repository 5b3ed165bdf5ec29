"""The HTML report (index.html) on a fixed evaluation: what it shows, that it is one offline file, that text is inert.

The browser half (filters, no request leaves, nothing runs) is in tests/test_report_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import write_gold
from annotate.curve import Curve, CurveRun, write_curve
from annotate.errors import EvaluationError
from annotate.evaluate import Evaluation, evaluate
from annotate.htmlreport import INDEX_FILE, render_report, write_html_report
from annotate.mistakes import KINDS, mistakes
from annotate.records import AnnotatedDoc
from tests.conftest import span
from tests.report_fixture import (
    EXPECTED_KINDS,
    EXPECTED_LABELS,
    HOSTILE,
    LABELS,
    gold_docs,
    predicted_docs,
    write_fixed_evaluation,
)


class _Tags(HTMLParser):
    """Every element of a page with its attributes, and the text inside each script element."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "reports"
    gold = write_fixed_evaluation(out)
    return out, gold


def test_each_error_gets_its_kind():
    found = [m for ms in mistakes(gold_docs(), predicted_docs()).values() for m in ms]
    assert {kind: sum(m.kind == kind for m in found) for kind in KINDS} == EXPECTED_KINDS
    assert {label: sum(label in m.labels for m in found) for label in LABELS} == EXPECTED_LABELS
    plain = {m.kind: m for m in mistakes(gold_docs(), predicted_docs())["plain"]}
    assert plain["boundary"].gold.text == "a full withdrawal" and plain["boundary"].predicted.text == "full withdrawal"
    assert plain["label"].labels == ("ACTOR", "FIGURE")
    # every strict error of evaluate() is in exactly one mistake, on its side
    strict = evaluate(gold_docs(), predicted_docs(), LABELS, bootstrap=0).errors
    sides = {("false negative", m.doc_id, m.gold) for m in found if m.gold} | {
        ("false positive", m.doc_id, m.predicted) for m in found if m.predicted
    }
    assert sides == {(e.kind, e.doc_id, e.span) for e in strict}


def test_a_prediction_nested_in_a_right_one_is_a_false_positive():
    text = "Hamas said talks resume."
    gold = [AnnotatedDoc("d", text, (span(text, "Hamas said", "ATTRIBUTION"),))]
    predicted = [AnnotatedDoc("d", text, (span(text, "Hamas said", "ATTRIBUTION"), span(text, "Hamas", "ACTOR")))]
    (mistake,) = mistakes(gold, predicted)["d"]
    assert (mistake.kind, mistake.gold, mistake.predicted.text) == ("false positive", None, "Hamas")


def test_metrics_json_reads_back_into_the_same_evaluation():
    evaluation = evaluate(gold_docs(), predicted_docs(), LABELS, bootstrap=30, seed=1)
    again = Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict())))
    assert again.to_dict() == evaluation.to_dict()


def test_the_page_is_one_file_with_only_its_own_script_and_inline_images(folder):
    out, gold = folder
    page = render_report(out, gold)
    tags = _Tags(page)
    names = [name for name, _ in tags.tags]
    assert names.count("script") == 1 and "iframe" not in names and "b" not in names and "style" in names
    assert names.count("style") == 1  # ours; the article's <style> is text
    for name, attrs in tags.tags:
        assert not any(key.startswith("on") for key in attrs), (name, attrs)
        if name == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
        if name in ("link", "iframe", "object", "embed"):
            pytest.fail(f"external resource element <{name}>")
        assert not (name == "a" and attrs.get("href", "").startswith("javascript:"))
    # the Content-Security-Policy lets exactly this script run, and nothing load from anywhere
    (policy,) = [a["content"] for n, a in tags.tags if n == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(tags.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_the_page_shows_hostile_text_as_text(folder):
    out, gold = folder
    tags = _Tags(render_report(out, gold))
    shown = "".join(tags.text)
    # displaCy shows the article token by token; the error list shows its context exactly
    assert all(word in shown for word in ("window.__reportPwned", "onerror", "window.__reportImg", "srcdoc"))
    assert "</a> <style>body{display:none}</style> Hamas said talks resume." in shown


def test_the_page_has_scores_confusion_and_every_error_with_its_kind(folder):
    out, gold = folder
    page = render_report(out, gold, links={"plain": "http://127.0.0.1:9/projects/3/data?task=7"}, project="Review")
    tags = _Tags(page)
    rows = [attrs for name, attrs in tags.tags if name == "tr" and "mistake" in attrs.get("class", "")]
    assert len(rows) == sum(EXPECTED_KINDS.values())
    assert {kind: sum(r["data-kind"] == kind for r in rows) for kind in KINDS} == EXPECTED_KINDS
    assert {label: sum(label in r["data-labels"].split() for r in rows) for label in LABELS} == EXPECTED_LABELS
    links = [a["href"] for n, a in tags.tags if n == "a" and "task=" in a.get("href", "")]
    assert links and set(links) == {"http://127.0.0.1:9/projects/3/data?task=7"}
    assert sum(1 for n, a in tags.tags if n == "img") == 2  # P/R/F chart and confusion heat map
    shown = "".join(tags.text)
    assert "gold_sha256" in shown and "Scores per label" in shown and "Learning curve" not in shown
    assert 'class="spans"' in page  # displaCy's span renderer drew the articles


def test_curve_and_acceptance_appear_when_their_files_are_there(folder):
    out, gold = folder

    def scores(f1: float) -> dict:
        return {schema: {**{label: f1 for label in LABELS}, "micro": f1} for schema in ("strict", "partial")}

    runs = [
        CurveRun(size, repeat, ("a",), ("b",), scores(f1), 1.0)
        for size, repeat, f1 in ((1, 1, 0.2), (1, 2, 0.3), (2, 1, 0.5), (2, 2, 0.4))
    ]
    write_curve(out, Curve(LABELS, [1, 2], runs, {"repeats": 2}))
    (out / "acceptance.json").write_text(json.dumps({"v1": {"ACTOR": {"kept": 3, "deleted": "<b>1</b>"}}}), "utf-8")
    page = write_html_report(out, gold).read_text(encoding="utf-8")
    shown = "".join(_Tags(page).text)
    assert "Learning curve by article" in shown and "still raises F1 (0.250 → 0.450, +0.200" in shown
    assert "Pre-annotation acceptance" in shown and '"deleted": "<b>1</b>"' in shown
    assert sum(1 for n, _ in _Tags(page).tags if n == "img") == 3


def test_the_report_refuses_gold_other_than_the_one_scored(folder):
    out, gold = folder
    changed = [gold[0].with_spans(gold[0].spans[:1]), *gold[1:]]
    with pytest.raises(EvaluationError, match="was computed on gold"):
        render_report(out, changed)


def test_report_command_writes_index_html(folder, tmp_path, monkeypatch, project_root):
    out, gold = folder
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.annotate]\nschema = "{project_root / "guidelines" / "labels.toml"}"\ngold = "gold.jsonl"\n', "utf-8"
    )
    write_gold(tmp_path / "gold.jsonl", gold)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote {out / INDEX_FILE}\n"
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path / 'nowhere' / 'metrics.json'}: no such file")


def test_the_acceptance_figures_pull_wrote_reach_index_html(folder, tmp_path, monkeypatch, project_root):
    from annotate.acceptance import acceptance_path, write_acceptance

    out, gold = folder
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.annotate]\nschema = "{project_root / "guidelines" / "labels.toml"}"\ngold = "gold/gold.jsonl"\n',
        "utf-8",
    )
    write_gold(tmp_path / "gold" / "gold.jsonl", gold)
    # Where pull writes them: beside the project's pulled file in gold/pulled/ (the default).
    pulled = tmp_path / "gold" / "pulled" / "news-loop.jsonl"
    pulled.parent.mkdir(parents=True)
    write_acceptance(
        {"model_versions": {"spancat-1a2b": {"annotations": 4, "deleted": "<i>2</i>"}}}, acceptance_path(pulled)
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    shown = "".join(_Tags((out / INDEX_FILE).read_text(encoding="utf-8")).text)
    assert "Pre-annotation acceptance" in shown and "news-loop.acceptance.json" in shown
    assert '"spancat-1a2b"' in shown and '"deleted": "<i>2</i>"' in shown


def test_hostile_article_fixture_is_what_the_browser_test_expects():
    assert HOSTILE.count("<script>") == 2


def test_only_the_articles_with_most_errors_are_drawn():
    from annotate.htmlreport import article_views

    predicted = predicted_docs()
    third = predicted[2]
    extra = [span(third.text, word, "ACTOR") for word in ("will", "meet", "week")]
    predicted[2] = third.with_spans([*third.spans, *extra])  # "third": 5 errors, the others 2 each
    views = article_views(gold_docs(), predicted, LABELS, drawn=1)
    assert [view.doc_id for view in views] == ["hostile", "plain", "third"] and all(v.mistakes for v in views)
    assert [bool(view.gold_html) for view in views] == [False, False, True]
    assert 'class="spans"' in views[2].gold_html and 'class="spans"' in views[2].predicted_html
