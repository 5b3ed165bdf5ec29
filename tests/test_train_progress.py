"""Progress on long work: training reports fold, step and loss through a callback (the library never
prints); the CLI draws a bar on a terminal and keeps plain lines otherwise.

The model here is the small test config (``small_config``): what is checked is the reporting, not
the project's recipe (tests/test_train.py trains that one)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import write_gold
from annotate.rules import load_patterns
from annotate.train import TrainingProgress, cross_validate, train, train_pipeline

TINY = {"training.max_steps": 6, "training.eval_frequency": 3}
pytestmark = pytest.mark.slow


def test_every_step_is_reported_with_the_loss_and_the_model_is_the_same(silver, small_config, schema):
    config = small_config
    steps = []
    heard = train_pipeline(silver[:1], config, schema.names, seed=7, overrides=TINY, on_step=lambda *a: steps.append(a))
    silent = train_pipeline(silver[:1], config, schema.names, seed=7, overrides=TINY)
    assert [(step, total) for step, total, _ in steps] == [(n, 6) for n in range(7)], "steps 0..max_steps, as spaCy"
    losses = [loss for _, _, loss in steps]
    assert all(isinstance(loss, float) and loss > 0 for loss in losses)
    assert losses[0] == losses[1] == losses[2] and losses[3] == losses[4] == losses[5], "kept between evaluations"
    assert heard.get_pipe("spancat").model.to_bytes() == silent.get_pipe("spancat").model.to_bytes()
    assert heard.config["training"]["logger"] == silent.config["training"]["logger"]


def test_train_saves_the_projects_own_logger_in_the_config(silver, small_config, schema, tmp_path):
    events: list[TrainingProgress] = []
    train(
        silver,
        tmp_path / "model",
        config_path=small_config,
        labels=schema.names,
        schema_sha256=schema.sha256,
        overrides=TINY,
        progress=events.append,
    )
    assert events[0].message == "training on 2 article(s)"
    assert [e.step for e in events[1:]] == list(range(7))
    saved = (tmp_path / "model" / "config.cfg").read_text(encoding="utf-8")
    assert "spacy.ConsoleLogger.v1" in saved and "annotate" not in saved.split("[training.logger]")[1][:200]


def test_cross_validation_reports_each_fold_and_its_steps(silver, small_config, schema, project_root):
    events: list[TrainingProgress] = []
    patterns = load_patterns(project_root / "guidelines" / "patterns.jsonl", schema.names)
    cross_validate(
        silver, config_path=small_config, patterns=patterns, labels=schema.names, overrides=TINY, progress=events.append
    )
    stages = [(e.fold, e.message) for e in events if e.message]
    first, second = sorted(doc.id for doc in silver)
    assert stages == [(1, f"fold 1/2: training without {first}"), (2, f"fold 2/2: training without {second}")]
    steps = [(e.fold, e.folds, e.step) for e in events if not e.message]
    assert steps == [(fold, 2, step) for fold in (1, 2) for step in range(7)]


def _fresh_project(tmp_path, project_root, silver, monkeypatch, small_config):
    import re
    import shutil

    (tmp_path / "pyproject.toml").write_text('[tool.annotate]\ngold = "gold/gold.jsonl"\n', encoding="utf-8")
    shutil.copytree(project_root / "guidelines", tmp_path / "guidelines")
    (tmp_path / "configs").mkdir()
    text = small_config.read_text(encoding="utf-8")
    text = re.sub(r"eval_frequency = \d+", "eval_frequency = 3", re.sub(r"max_steps = \d+", "max_steps = 6", text))
    (tmp_path / "configs" / "spancat.cfg").write_text(text, encoding="utf-8")
    write_gold(tmp_path / "gold" / "gold.jsonl", silver)
    monkeypatch.chdir(tmp_path)


def test_cv_prints_plain_lines_when_the_output_is_not_a_terminal(
    silver, project_root, tmp_path, monkeypatch, small_config
):
    _fresh_project(tmp_path, project_root, silver, monkeypatch, small_config)
    result = CliRunner().invoke(app, ["cv", "--out", "cv", "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    first, second = sorted(doc.id for doc in silver)
    lines = result.stdout.splitlines()
    start = lines.index(f"fold 1/2: training without {first}")
    assert lines[start : start + 3] == [
        f"fold 1/2: training without {first}",
        f"fold 2/2: training without {second}",
        "evaluating pooled predictions",
    ]
    assert "━" not in result.output and "\x1b" not in result.output


def test_train_and_cv_draw_a_bar_with_fold_step_and_loss_on_a_terminal(
    silver, project_root, tmp_path, monkeypatch, small_config
):
    import annotate.cli.training as training_cli

    _fresh_project(tmp_path, project_root, silver, monkeypatch, small_config)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(training_cli, "err_console", terminal)

    cv = CliRunner().invoke(app, ["cv", "--out", "cv", "--bootstrap", "20", "--workers", "1"])  # steps: in-process
    assert cv.exit_code == 0, cv.output
    drawn = screen.getvalue()
    assert "fold 2/2" in drawn and "step" in drawn and "6/6" in drawn and "━" in drawn
    assert any(f"loss {n}" in drawn for n in "0123456789"), "the bar shows the loss once it is known"
    assert "fold 1/2: training without" not in cv.stdout, "on a terminal the stages go above the bar, not to stdout"

    screen.truncate(0)
    trained = CliRunner().invoke(app, ["train", "--out", "models/tiny"])
    assert trained.exit_code == 0, trained.output
    assert "training on 2 article(s)" in screen.getvalue() and "6/6" in screen.getvalue()
    assert json.loads((tmp_path / "models" / "tiny" / "annotate_meta.json").read_text(encoding="utf-8"))["seed"] == 0
