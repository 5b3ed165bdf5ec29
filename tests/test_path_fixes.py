"""What a careful user checks without a server: one model identity, honest evaluation and provenance."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.cli.labeling import _next_steps
from annotate.corpus import read_gold
from annotate.model import META_FILE, library_versions, model_version, pipeline_sha256
from annotate.settings import load_settings
from tests.conftest import ROOT


def test_one_model_one_hash_in_train_meta_and_label_studio(ruler_model_dir):
    before = model_version(ruler_model_dir)
    digest = pipeline_sha256(ruler_model_dir)
    assert before == f"model-best-{digest[:12]}"
    (ruler_model_dir / META_FILE).write_text(json.dumps({"model_sha256": digest}), encoding="utf-8")
    assert model_version(ruler_model_dir) == before, "train writes its meta file after hashing; it is no part of it"


def test_evaluating_a_model_on_its_own_training_articles_says_it_is_a_fit_check(
    ruler_model_dir, project_root, tmp_path, monkeypatch
):
    gold = read_gold(load_settings(project_root).gold)
    articles = [doc.id for doc in gold[:3]]
    (ruler_model_dir / META_FILE).write_text(json.dumps({"articles": articles}), encoding="utf-8")
    monkeypatch.chdir(project_root)
    runner = CliRunner()
    command = ["evaluate", str(ruler_model_dir), "--out", str(tmp_path / "seen"), "--bootstrap", "0"]
    seen = runner.invoke(app, command)
    assert seen.exit_code == 0, seen.output
    assert (
        f"Warning: {ruler_model_dir} was trained on 3 of these {len(gold)} gold article(s) (annotate_meta.json): "
        "the scores are a fit check, not held-out"
    ) in seen.stderr
    metrics = json.loads((tmp_path / "seen" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["provenance"]["trained_on_gold"] == 3
    (ruler_model_dir / META_FILE).write_text(json.dumps({"articles": ["elsewhere"]}), encoding="utf-8")
    command[3] = str(tmp_path / "unseen")
    unseen = runner.invoke(app, command)
    assert unseen.exit_code == 0 and "fit check" not in unseen.stderr


def test_provenance_names_only_what_the_scores_depend_on():
    versions = library_versions()
    assert "not installed" not in versions.values()
    assert {"python", "spacy", "thinc", "numpy", "news-annotate"} <= set(versions)


def test_publish_date_help_names_every_fallback():
    result = CliRunner().invoke(app, ["publish", "--help"], terminal_width=200)
    assert "else the gold file's modification date" in " ".join(result.output.split())


def test_next_step_after_make_studio_says_how_to_put_annotate_on_path(monkeypatch, tmp_path):
    beside = Path(sys.executable).with_name("annotate")
    if not beside.is_file():
        pytest.skip("the annotate script is not installed beside this Python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _next_steps() == (
        f"Next: source {beside.with_name('activate')}   (puts annotate on PATH), "
        "then: annotate push   (then label in the browser, then: annotate pull)"
    )
    monkeypatch.setenv("PATH", str(beside.parent))
    assert _next_steps() == "Next: annotate push   (then label in the browser, then: annotate pull)"


def _documented_command_lines():
    """Every ``annotate …`` line in a fenced block of the README and docs/, with where it is."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```[a-z]*\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            for line in block.splitlines():
                line = line.removeprefix("$ ").strip()
                if line.startswith("annotate "):
                    yield f"{path.name}: {line}", line.split("#", 1)[0]


def test_every_documented_command_and_option_exists():
    """Docs and commands cannot drift apart: each documented subcommand and --option is a real one."""
    import typer.main

    root = typer.main.get_command(app)
    problems = []
    lines = list(_documented_command_lines())
    assert len(lines) > 20 and any("annotate pull" in line for _, line in lines)
    lines.append(("a drifted line", "annotate pull --no-such-option"))
    for where, line in lines:
        command, words = root, line.split()[1:]
        while hasattr(command, "commands") and words and words[0] in command.commands:
            command = command.commands[words.pop(0)]
        if hasattr(command, "commands"):
            problems.append(f"{where}: no such command")
            continue
        known = {option for param in command.params for option in (*param.opts, *param.secondary_opts)}
        problems += [
            f"{where}: {option} is not an option"
            for option in re.findall(r"--[a-z][a-z0-9-]*", line)
            if option not in known | {"--help"}
        ]
    assert problems == ["a drifted line: --no-such-option is not an option"]
