"""`annotate agreement` and `annotate adjudicate` from the command line: outputs, files, error lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import read_gold, write_gold, write_pulled
from annotate.records import AnnotatedDoc, PulledAnnotation, Span, text_sha256
from tests.conftest import usage_error

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Hamas said talks stalled."
HAMAS = Span.from_offsets(TEXT, 0, 5, "ACTOR")
HAMAS_SAID = Span.from_offsets(TEXT, 0, 10, "ACTOR")
TALKS = Span.from_offsets(TEXT, 11, 16, "ACTOR")

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A pulled file with three annotators on one article, and the article it was annotated on."""
    monkeypatch.chdir(ROOT)
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "doc.txt").write_text(TEXT, encoding="utf-8")
    annotations = [
        PulledAnnotation(7, 70, "doc", "alice", (HAMAS, TALKS), text_sha256=text_sha256(TEXT)),
        PulledAnnotation(7, 71, "doc", "bob", (HAMAS_SAID, TALKS), text_sha256=text_sha256(TEXT)),
        PulledAnnotation(7, 72, "doc", "carol", (HAMAS,), text_sha256=text_sha256(TEXT)),
        PulledAnnotation(7, 73, "doc", "dave", (), was_cancelled=True, text_sha256=text_sha256(TEXT)),
    ]
    pulled = tmp_path / "pulled.jsonl"
    write_pulled(pulled, annotations)
    return tmp_path, pulled, articles


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_agreement_prints_pairwise_tables_and_disagreements(project):
    tmp_path, pulled, articles = project
    result = invoke("agreement", pulled, "--articles", articles, "--json-out", tmp_path / "agreement.json")
    assert result.exit_code == 0, result.output
    assert "alice vs bob: 1 article(s)" in result.stdout and "bob vs carol" in result.stdout
    assert "Krippendorff's alpha" in result.stdout
    assert "4 disagreement(s); 1 cancelled and 0 superseded annotation(s) left out" in result.stdout
    assert "doc (task 7) boundary: alice [0:5] ACTOR 'Hamas' | bob [0:10] ACTOR 'Hamas said'" in result.stdout
    written = json.loads((tmp_path / "agreement.json").read_text(encoding="utf-8"))
    assert written["annotators"] == ["alice", "bob", "carol"] and "disagreements" not in written
    assert written["disagreement_count"] == 4


def test_agreement_json_has_figures_and_disagreements(project):
    _, pulled, articles = project
    result = invoke("agreement", pulled, "--articles", articles, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    alice_carol = data["pairs"][1]
    assert alice_carol["annotators"] == ["alice", "carol"]
    assert alice_carol["strict"]["overall"] == {
        "matched": 1,
        "first": 2,
        "second": 1,
        "precision": 1.0,
        "recall": 0.5,
        "f1": 0.6667,
    }
    assert len(data["disagreements"]) == 4  # a/b boundary, a/c talks, b/c boundary and talks


def test_adjudicate_writes_gold_and_conflicts(project):
    tmp_path, pulled, articles = project
    gold, conflicts = tmp_path / "gold" / "gold.jsonl", tmp_path / "conflicts.jsonl"
    result = invoke("adjudicate", pulled, "--articles", articles, "--out", gold, "--conflicts-out", conflicts)
    assert result.exit_code == 0, result.output
    wrote = f"Wrote {gold}: 1 article(s) adjudicated, 2 span(s); 0 from ground truth, min-agree 2 for the rest"
    assert wrote in result.stdout
    assert "doc: [0:10] ACTOR 'Hamas said': marked by bob; not by alice, carol" in result.stdout
    (doc,) = read_gold(gold)
    assert doc.spans == (HAMAS, TALKS) and doc.text == TEXT
    (conflict,) = [json.loads(line) for line in conflicts.read_text(encoding="utf-8").splitlines()]
    assert conflict["span"] == HAMAS_SAID.to_dict() and conflict["marked_by"] == ["bob"]


def test_adjudicate_refuses_a_changed_article_and_keeps_the_old_gold(project):
    tmp_path, pulled, articles = project
    gold = tmp_path / "gold.jsonl"
    previous = '{"id": "old", "text": "Old text.", "spans": []}\n'
    gold.write_text(previous, encoding="utf-8")
    (articles / "doc.txt").write_text(TEXT + " Edited later.", encoding="utf-8")
    result = invoke("adjudicate", pulled, "--articles", articles, "--out", gold)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {pulled}: task 7, annotation 70 by alice: article 'doc' has changed since it was")
    assert gold.read_text(encoding="utf-8") == previous


def test_adjudicate_updates_its_articles_and_keeps_the_rest_of_the_gold_unless_replace(project):
    tmp_path, pulled, articles = project
    gold = tmp_path / "gold.jsonl"
    curated = AnnotatedDoc("curated", "Curated by hand.", annotator="gold-v1", source="seeds/curated.txt")
    write_gold(gold, [curated, AnnotatedDoc("doc", TEXT, source="seeds/doc.txt")])
    result = invoke("adjudicate", pulled, "--articles", articles, "--out", gold)
    assert result.exit_code == 0, result.output
    assert (
        "Kept 1 article(s) of the previous gold that were not adjudicated (curated); "
        "--replace writes only the adjudicated ones"
    ) in result.stdout
    merged = {doc.id: doc for doc in read_gold(gold)}
    assert merged["curated"] == curated
    assert merged["doc"].source.startswith("seeds/doc.txt | label-studio adjudicated: ")
    assert invoke("adjudicate", pulled, "--articles", articles, "--out", gold, "--replace").exit_code == 0
    assert [doc.id for doc in read_gold(gold)] == ["doc"]


def test_missing_pulled_file_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("agreement", tmp_path / "nothing.jsonl")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'nothing.jsonl'}: no such file of pulled annotations\n"


def test_missing_article_is_one_error_line(project, tmp_path):
    _, pulled, _ = project
    other = tmp_path / "other"
    other.mkdir()
    (other / "unrelated.txt").write_text("Something else.", encoding="utf-8")
    result = invoke("agreement", pulled, "--articles", other)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {pulled}: task 7, annotation 70 by alice: no article with id 'doc' among the articles given\n"
    )


def test_agreement_without_overlap_is_one_error_line(project):
    tmp_path, _, articles = project
    alone = tmp_path / "alone.jsonl"
    write_pulled(alone, [PulledAnnotation(7, 1, "doc", "alice", (HAMAS,), text_sha256=text_sha256(TEXT))])
    result = invoke("agreement", alone, "--articles", articles)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {alone}: no article has two or more annotators (1 article(s), annotators: alice); "
        "agreement needs articles annotated by several\n"
    )


def test_min_agree_zero_is_one_error_line(project):
    tmp_path, pulled, articles = project
    result = invoke("adjudicate", pulled, "--articles", articles, "--min-agree", "0", "--out", tmp_path / "g.jsonl")
    assert (result.exit_code, result.stderr) == (1, "Error: --min-agree must be at least 1, not 0\n")
    assert not (tmp_path / "g.jsonl").exists()


@pytest.mark.parametrize("command", ["agreement", "adjudicate"])
def test_commands_have_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "PULLED_FILE" in result.stdout and "--articles" in result.stdout
    assert "--project" in result.stdout and ("--review" in result.stdout) == (command == "adjudicate")


def test_figures_written_by_agreement_reach_the_dataset_card_of_publish(project, tmp_path, monkeypatch):
    """The documented path: `agreement --json-out reports/agreement.json`, then `publish` finds it by itself."""
    _, pulled, articles = project
    root = tmp_path / "newsroom"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[tool.annotate]\n"
        f'schema = "{ROOT / "guidelines" / "labels.toml"}"\nguidelines = "{ROOT / "guidelines" / "GUIDELINES.md"}"\n'
        f'seeds = "{articles}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(root)
    measured = invoke("agreement", pulled, "--json-out", "reports/agreement.json")
    assert measured.exit_code == 0, measured.output
    assert invoke("adjudicate", pulled).exit_code == 0
    published = invoke("publish", "dataset", "--date", "2026-01-01")
    assert published.exit_code == 0, published.output
    card = (root / "dataset" / "README.md").read_text(encoding="utf-8")
    summary = json.loads((root / "reports" / "agreement.json").read_text(encoding="utf-8"))["summary"]
    assert "annotated independently by two or more of 3 annotators (annotator-1, annotator-2, annotator-3)" in card
    assert "alice" not in card, "annotators are published as pseudonyms"
    assert f"| span F1, strict (mean over pairs) | {summary['strict_f1_mean']:.3f} |" in card


def test_agreement_needs_exactly_one_source(project):
    _, pulled, _ = project
    neither = invoke("agreement")
    assert usage_error(neither) == "Invalid value: give either a PULLED_FILE or --project NAME"
    both = invoke("adjudicate", pulled, "--project", "News spans")
    assert usage_error(both) == "Invalid value: give either a PULLED_FILE or --project NAME, not both"


def test_review_needs_a_project(project, tmp_path):
    _, pulled, articles = project
    result = invoke("adjudicate", pulled, "--articles", articles, "--review", "--out", tmp_path / "g.jsonl")
    assert usage_error(result) == (
        "Invalid value: --review needs --project NAME: the Label Studio project to send the conflicts to"
    )
    assert not (tmp_path / "g.jsonl").exists()


def test_articles_do_not_go_with_a_project(project):
    _, _, articles = project
    result = invoke("agreement", "--project", "News spans", "--articles", articles)
    assert usage_error(result) == (
        "Invalid value: --articles goes with a PULLED_FILE; with --project the texts come from Label Studio"
    )
