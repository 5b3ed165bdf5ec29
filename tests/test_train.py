"""Training, cross-validation, reports and the train/cv/evaluate/run commands, on tiny budgets.

Gold here is made from two seed articles by the rule component, so the tests need nothing that
is still being annotated; training runs a handful of steps (the figures are meaningless, the
plumbing and the determinism are what is checked). The project's own config (configs/spancat.cfg)
trains in the tests of determinism, provenance and plain ``spacy train``; the reports and commands
train the small test config (``small_config``), which is all they need.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.convert import blank_pipeline, docbin_bytes, to_spacy_docs
from annotate.corpus import read_gold, write_gold
from annotate.evaluate import evaluate
from annotate.experiment import cross_validation_report
from annotate.model import load_pipeline, pipeline_sha256, predict
from annotate.train import article_folds, train, train_pipeline
from tests.conftest import ROOT

TINY = {"training.max_steps": 6, "training.eval_frequency": 3}
runner = CliRunner()


def test_folds_leave_one_article_out_or_split_by_article():
    assert article_folds(["b", "a", "c"]) == [["a"], ["b"], ["c"]]
    folds = article_folds([f"a{n}" for n in range(7)], folds=3, seed=1)
    assert len(folds) == 3 and sorted(sum(folds, [])) == [f"a{n}" for n in range(7)]
    assert folds == article_folds([f"a{n}" for n in range(7)], folds=3, seed=1)


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed(silver, config, schema):
    first = train_pipeline(silver[:1], config, schema.names, seed=7, overrides=TINY)
    second = train_pipeline(silver[:1], config, schema.names, seed=7, overrides=TINY)
    assert first.pipe_names == ["tok2vec", "span_finder", "spancat", "best_per_label"]
    assert predict(first, silver, "a") == predict(second, silver, "a")
    assert first.get_pipe("spancat").model.to_bytes() == second.get_pipe("spancat").model.to_bytes()
    assert first.get_pipe("tok2vec").model.to_bytes() == second.get_pipe("tok2vec").model.to_bytes()


@pytest.mark.slow
def test_train_saves_pipeline_with_provenance(silver, config, schema, tmp_path):
    from annotate.corpus import gold_sha256

    result = train(
        silver, tmp_path / "model", config_path=config, labels=schema.names, schema_sha256=schema.sha256, overrides=TINY
    )
    meta = json.loads((tmp_path / "model" / "annotate_meta.json").read_text(encoding="utf-8"))
    assert meta == result.meta
    assert meta["gold_sha256"] == gold_sha256(silver)
    assert meta["schema_sha256"] == schema.sha256
    assert meta["model_sha256"] == pipeline_sha256(tmp_path / "model")
    assert meta["versions"]["spacy"].startswith("3.")
    assert set(meta["scores_on_training_data"]) == {"strict", "partial"}
    assert load_pipeline(tmp_path / "model").meta["annotate"]["gold_sha256"] == meta["gold_sha256"]
    assert set(meta) == _documented_meta_keys(), "models/README.md describes every key of annotate_meta.json"


def _documented_meta_keys() -> set[str]:
    readme = (ROOT / "models" / "README.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(\w+)` \|", readme, flags=re.MULTILINE))


def test_models_readme_is_kept_in_git_and_describes_the_meta_file():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", "models/README.md"], cwd=ROOT, check=False)
    assert ignored.returncode == 1, "models/README.md must not be git-ignored"
    assert {"gold_sha256", "model_sha256", "seed", "scores_on_training_data"} <= _documented_meta_keys()


@pytest.mark.slow
def test_cross_validation_writes_predictions_that_recompute_the_scores(
    silver, small_config, schema, project_root, tmp_path
):
    outcome = cross_validation_report(
        silver,
        tmp_path,
        schema=schema,
        config_path=small_config,
        patterns_path=project_root / "guidelines" / "patterns.jsonl",
        bootstrap=50,
        overrides=TINY,
    )
    assert outcome.source["folds"] == [[doc.id] for doc in sorted(silver, key=lambda d: d.id)]
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["provenance"]["gold_sha256"] == outcome.source["gold_sha256"]
    for system in ("rules", "model", "both"):
        pooled = read_gold(tmp_path / f"predictions-{system}.jsonl")
        again = evaluate(silver, pooled, schema.names, bootstrap=50)
        assert metrics["systems"][system]["scores"]["strict"]["micro"]["f1"] == again.scores["strict"]["micro"].f1
        assert metrics["systems"][system]["scores"]["partial"]["micro"]["f1"] == again.scores["partial"]["micro"].f1
    # the rules produced this silver gold, so the rules alone score perfectly: a check the pooling is aligned
    assert metrics["systems"]["rules"]["scores"]["strict"]["micro"]["f1"] == 1.0
    assert (tmp_path / "scores.png").read_bytes().startswith(b"\x89PNG")
    assert "## model" in (tmp_path / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_config_runs_with_plain_spacy_train(silver, config, tmp_path):
    docs, _ = to_spacy_docs(blank_pipeline(), silver)
    (tmp_path / "train.spacy").write_bytes(docbin_bytes(docs))
    command = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(tmp_path / "out")]
    command += ["--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "train.spacy")]
    command += ["--training.max_steps", "4", "--training.eval_frequency", "2"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "model-last" / "config.cfg").is_file()


def test_evaluate_command_scores_a_predictions_file(silver, tmp_path):
    gold_path, predictions_path = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    write_gold(gold_path, silver)
    write_gold(predictions_path, [doc.with_spans(doc.spans[1:]) for doc in silver])
    result = runner.invoke(
        app, ["evaluate", str(predictions_path), "--gold", str(gold_path), "--json", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    micro = metrics["systems"]["predictions"]["scores"]["strict"]["micro"]
    assert micro["precision"] == 1.0 and micro["support"] == sum(len(d.spans) for d in silver)
    assert metrics["provenance"]["predictions_sha256"]
    assert (tmp_path / "r" / "index.html").is_file() and (tmp_path / "r" / "predictions-predictions.jsonl").is_file()


def test_evaluate_command_refuses_predictions_for_other_articles(silver, tmp_path):
    gold_path, predictions_path = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    write_gold(gold_path, silver)
    write_gold(predictions_path, silver[:1])
    result = runner.invoke(app, ["evaluate", str(predictions_path), "--gold", str(gold_path), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == "Error: predictions lack 1 gold article(s), first " + silver[1].id + "\n"


@pytest.mark.slow
def test_run_is_the_whole_job_in_a_fresh_project(silver, project_root, tmp_path, monkeypatch, small_config):
    """`annotate run` in a project of its own: gold check, CV of three systems, table, reports."""
    (tmp_path / "pyproject.toml").write_text('[tool.annotate]\ngold = "gold/gold.jsonl"\n', encoding="utf-8")
    shutil.copytree(project_root / "guidelines", tmp_path / "guidelines")
    (tmp_path / "configs").mkdir()
    config = small_config.read_text(encoding="utf-8")
    (tmp_path / "configs" / "spancat.cfg").write_text(re.sub(r"max_steps = \d+", "max_steps = 6", config), "utf-8")
    write_gold(tmp_path / "gold" / "gold.jsonl", silver)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "Cross-validated scores" in result.output and "micro" in result.output
    written = {p.name for p in (tmp_path / "reports").iterdir()}
    assert written >= {"metrics.json", "report.md", "scores.png", "index.html"}
    assert (tmp_path / "reports" / "predictions-both.jsonl").is_file()

    result = runner.invoke(app, ["cv", "--gold", "gold/gold.jsonl", "--out", "cv-out", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "gold/gold.jsonl: OK" in result.output and "Cross-validated scores" in result.output
    assert (tmp_path / "cv-out" / "predictions-model.jsonl").is_file()


def test_run_stops_on_bad_gold(tmp_path, project_root, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.annotate]\n", encoding="utf-8")
    shutil.copytree(project_root / "guidelines", tmp_path / "guidelines")
    bad = {"id": "d", "text": "Hamas said", "spans": [{"start": 0, "end": 4, "label": "ACTOR", "text": "Hama"}]}
    (tmp_path / "gold").mkdir()
    (tmp_path / "gold" / "gold.jsonl").write_text(json.dumps(bad) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 1
    problem, error = result.output.splitlines()
    gold = tmp_path / "gold" / "gold.jsonl"
    assert problem == f"{gold}:1: d: [0:4] ACTOR 'Hama': edges are not on spaCy token boundaries (expand gives 'Hamas')"
    assert error == f"Error: 1 problem(s) in the gold {gold}; fix them first"
    assert not (tmp_path / "reports").exists()


def test_evaluate_command_names_a_missing_target(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nothing.jsonl")])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'nothing.jsonl'}: no such model folder or predictions file\n"
