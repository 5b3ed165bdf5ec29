"""The memorized baseline, what each system knows in the reports, and `run`/`cv --nested` on the command line.

Tiny hand-made articles (tests/nested_fixture.py) and a tiny config in a project of its own.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import annotate.experiment as experiment
from annotate.cli import app
from annotate.corpus import write_gold
from annotate.experiment import Outcome
from annotate.labels import load_schema
from annotate.model import predict
from annotate.records import AnnotatedDoc, Span
from annotate.rules import memorized_patterns, memorized_pipeline
from annotate.train import SYSTEMS, cross_validate
from tests.conftest import usage_error
from tests.nested_fixture import LABELS, articles, tiny_config

runner = CliRunner()


def test_memorized_matches_labeled_strings_longest_per_label():
    text = "Egyptian officials and officials met. Hamas officials too."
    seen = AnnotatedDoc(
        "t",
        text,
        (
            Span.from_offsets(text, 0, 18, "ACTOR"),  # Egyptian officials
            Span.from_offsets(text, 23, 32, "ACTOR"),  # officials
            Span.from_offsets(text, 38, 43, "FIGURE"),  # Hamas, as another label
        ),
    )
    assert memorized_patterns([seen, seen]) == [
        {"label": "ACTOR", "pattern": "Egyptian officials", "id": "memorized"},
        {"label": "ACTOR", "pattern": "officials", "id": "memorized"},
        {"label": "FIGURE", "pattern": "Hamas", "id": "memorized"},
    ]
    unseen = AnnotatedDoc("u", "Some Egyptian officials said hamas and Hamas officials left.")
    found = predict(memorized_pipeline([seen]), [unseen], "memorized")[0].spans
    assert [(span.text, span.label) for span in found] == [
        ("Egyptian officials", "ACTOR"),  # the longest ACTOR match, not "officials" inside it
        ("Hamas", "FIGURE"),  # exact text: "hamas" is not "Hamas"
        ("officials", "ACTOR"),
    ]


def test_memorized_learns_per_fold_from_the_training_articles_only():
    docs = articles()
    result = cross_validate(
        docs, config_path="no-config-needed.cfg", patterns=[], labels=LABELS, systems=("memorized",)
    )
    by_id = {doc.id: {(span.text, span.label) for span in doc.spans} for doc in result.predictions["memorized"]}
    # a3 holds strings seen in a1 (57 people) and a2 (a full withdrawal, Egyptian officials) ...
    assert {("57 people", "FIGURE"), ("a full withdrawal", "DEMAND"), ("Egyptian officials", "ACTOR")} <= by_id["a3"]
    # ... and its own, seen nowhere else: never found, though they are a3's gold spans
    assert ("two hundred trucks", "FIGURE") not in by_id["a3"] and ("The Red Crescent", "ACTOR") not in by_id["a3"]
    assert ("Qatari mediators", "ACTOR") not in by_id["a1"]
    assert all(doc.source.startswith("memorized fold") for doc in result.predictions["memorized"])


def _project(tmp_path, project_root):
    (tmp_path / "pyproject.toml").write_text('[tool.annotate]\ngold = "gold/gold.jsonl"\n', encoding="utf-8")
    shutil.copytree(project_root / "guidelines", tmp_path / "guidelines")
    (tmp_path / "configs").mkdir()
    tiny = tiny_config(project_root, tmp_path / "configs")
    tiny.rename(tmp_path / "configs" / "spancat.cfg")
    write_gold(tmp_path / "gold" / "gold.jsonl", articles())
    return tmp_path


@pytest.fixture
def project(tmp_path, project_root, monkeypatch):
    monkeypatch.chdir(_project(tmp_path, project_root))
    return tmp_path


def test_cli_passes_nested_and_candidate_configs_and_prints_what_each_system_knows(project, monkeypatch):
    (project / "configs" / "other.cfg").write_text((project / "configs" / "spancat.cfg").read_text("utf-8"), "utf-8")
    calls = []

    def fake_report(docs, reports, **kwargs):
        calls.append(kwargs)
        choice = {"held_out": ["a1"], "seen": ["a2", "a3"], "config": "configs/other.cfg", "thresholds": {"ACTOR": 0.3}}
        source = {"folds": [["a1"]], "systems_knowledge": {"memorized": "strings of the fold"}, "choices": [choice]}
        return Outcome({}, {}, source)

    monkeypatch.setattr(experiment, "cross_validation_report", fake_report)
    result = runner.invoke(app, ["run", "--nested", "--candidate-config", "configs/other.cfg"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["nested"] is True
    assert [str(path) for path in calls[-1]["configs"]] == [
        str(project / "configs" / "spancat.cfg"),
        "configs/other.cfg",
    ]
    assert "memorized: strings of the fold" in result.output
    assert "held out a1: chose other.cfg, thresholds ACTOR 0.3" in result.output

    result = runner.invoke(app, ["cv", "--nested", "--out", "cv-out"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["nested"] is True and len(calls[-1]["configs"]) == 1
    result = runner.invoke(app, ["cv"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["nested"] is False


@pytest.mark.parametrize("command", ["run", "cv"])
def test_cli_refuses_a_missing_candidate_config_or_one_without_nested(project, command):
    result = runner.invoke(app, [command, "--nested", "--candidate-config", "configs/missing.cfg"])
    assert result.exit_code == 1
    assert result.output == "Error: configs/missing.cfg: no such spaCy config\n"
    result = runner.invoke(app, [command, "--candidate-config", "configs/spancat.cfg"])
    assert usage_error(result).startswith("Invalid value: --candidate-config is for --nested")
    assert not (project / "reports").exists()


def test_help_says_what_nested_costs():
    for command in ("run", "cv"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--nested" in result.output and "3x the trainings" in result.output
        assert "--candidate-config" in result.output


def test_cv_nested_writes_each_fold_choice_and_what_each_system_knows(project):
    result = runner.invoke(app, ["cv", "--nested", "--bootstrap", "20", "--out", "nested"])
    assert result.exit_code == 0, result.output
    assert "fold 2/3, inner 1/2: reusing the model trained without a2, a1" in result.output
    metrics = json.loads((project / "nested" / "metrics.json").read_text(encoding="utf-8"))
    source = metrics["provenance"]
    assert list(metrics["systems"]) == list(SYSTEMS)
    assert list(source["systems_knowledge"]) == list(SYSTEMS) and source["nested"] is True
    assert "chosen per fold by an inner leave-one-article-out" in source["systems_knowledge"]["model"]
    assert "cue-word" in source["systems_knowledge"]["model"]  # the tiny config uses the cue suggester
    assert "optimistic" in source["systems_knowledge"]["rules"] and "honest" in source["systems_knowledge"]["memorized"]
    assert [choice["held_out"] for choice in source["choices"]] == [["a1"], ["a2"], ["a3"]]
    for choice in source["choices"]:
        assert not set(choice["held_out"]) & set(choice["seen"]) and set(choice["thresholds"]) == set(LABELS)
    markdown = (project / "nested" / "report.md").read_text(encoding="utf-8")
    assert "## What each system knows" in markdown and "## Choices per fold" in markdown
    assert "| a2 | a1 a3 | spancat.cfg |" in markdown
    page = (project / "nested" / "index.html").read_text(encoding="utf-8")
    assert "What each system knows" in page and "Choices per fold" in page
    for system in SYSTEMS:
        assert (project / "nested" / f"predictions-{system}.jsonl").is_file()
        assert f"{system}: " in result.output


def test_plain_cv_says_the_thresholds_are_fixed_in_the_config(project):
    outcome = experiment.cross_validation_report(
        articles(),
        project / "plain",
        schema=load_schema(project / "guidelines" / "labels.toml"),
        config_path=project / "configs" / "spancat.cfg",
        patterns_path=project / "guidelines" / "patterns.jsonl",
        bootstrap=0,
        systems=("rules", "memorized"),
    )
    assert outcome.source["nested"] is False and "choices" not in outcome.source
    assert list(outcome.source["systems_knowledge"]) == ["rules", "memorized"]
    knowledge = experiment.systems_knowledge(
        SYSTEMS, patterns_path="p.jsonl", configs=[project / "configs" / "spancat.cfg"], nested=False
    )
    assert "thresholds fixed in the config" in knowledge["model"]
