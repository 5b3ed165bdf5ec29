"""Every output of a command is checked before any work and before the first one is written.

A command that writes several files (curve, pull, apply, cv/run/evaluate) refuses an unusable
target before it trains, exports or labels anything, and never leaves some of its outputs new and
others old: random targets (user folders, links, dangling links, paths under a file) change nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.apply import REJECTS, apply
from annotate.corpus import write_gold
from annotate.errors import TargetError, TrainingError
from tests import test_bad_input
from tests.test_bad_input import TARGET_KINDS, assert_refused, invoke, make_target, snapshot

project = test_bad_input.project  # the fixture: a project of its own under a temporary folder

examples = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
IN_FOLDER_KINDS = ["user folder", "link to file", "link to folder", "dangling link"]
FOLDER_KINDS = [kind for kind in TARGET_KINDS if kind != "user folder"]


def two_articles(project: Path) -> None:
    """Gold a curve or a cross-validation can run on (one article would be refused for that alone)."""
    second = replace(test_bad_input.GOLD, id="e")
    write_gold(project / "gold" / "gold.jsonl", [test_bad_input.GOLD, second])


def refused_before_any_work(project: Path, *args) -> str:
    """Refused with one line, every file as it was, and no training/labeling started (no progress line)."""
    before = snapshot(project)
    result = invoke(*args)
    assert_refused(result)
    assert snapshot(project) == before
    assert "model 1/" not in result.output
    return result.output


# --- curve: curve.json and curve.png, and --out, before the trainings -------------------------------


@examples
@given(kind=st.sampled_from(IN_FOLDER_KINDS), name=st.sampled_from(["curve.json", "curve.png"]))
def test_curve_checks_both_files_before_training_and_keeps_the_other(project, kind, name):
    shutil.rmtree(project / "targets", ignore_errors=True)
    two_articles(project)
    make_target(project, kind, name)
    other = "curve.png" if name == "curve.json" else "curve.json"
    (project / "targets" / other).write_bytes(b"the earlier curve\n")
    refused_before_any_work(project, "curve", "--sizes", "1", "--repeats", "1", "--steps", "2", "--out", "targets")
    assert (project / "targets" / other).read_bytes() == b"the earlier curve\n"


@examples
@given(kind=st.sampled_from(FOLDER_KINDS))
def test_curve_out_that_is_not_a_folder_is_refused_before_training(project, kind):
    shutil.rmtree(project / "targets", ignore_errors=True)
    two_articles(project)
    target = make_target(project, kind, "out")
    refused_before_any_work(project, "curve", "--sizes", "1", "--repeats", "1", "--steps", "2", "--out", target)


def test_curve_writes_both_files_or_neither(tmp_path, monkeypatch):
    from annotate import curve as curve_module
    from annotate.curve import Curve, CurveRun, write_curve

    def no_plot(curve):
        raise TrainingError("the plot could not be drawn")

    (tmp_path / "curve.json").write_text("the earlier curve\n", encoding="utf-8")
    monkeypatch.setattr(curve_module, "curve_png", no_plot)
    with pytest.raises(TrainingError):
        f1 = {"ACTOR": 0.5, "micro": 0.5}
        write_curve(
            tmp_path, Curve(["ACTOR"], [1], [CurveRun(1, 1, ("a",), ("b",), {"strict": f1, "partial": f1}, 1.0)], {})
        )
    assert (tmp_path / "curve.json").read_text(encoding="utf-8") == "the earlier curve\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["curve.json"]


# --- cv, run, evaluate: every report file before the trainings or the scoring -----------------------


REPORT_NAMES = ["metrics.json", "scores.png", "report.md", "index.html", "predictions-predictions.jsonl"]


@examples
@given(kind=st.sampled_from(IN_FOLDER_KINDS), name=st.sampled_from(REPORT_NAMES))
def test_evaluate_checks_every_report_file_before_scoring(project, kind, name):
    shutil.rmtree(project / "targets", ignore_errors=True)
    make_target(project, kind, name)
    (project / "targets" / "metrics.json" if name != "metrics.json" else project / "targets" / "report.md").write_text(
        "earlier\n", encoding="utf-8"
    )
    refused_before_any_work(project, "evaluate", "gold/gold.jsonl", "--bootstrap", "0", "--out", "targets")


@examples
@given(kind=st.sampled_from(IN_FOLDER_KINDS), name=st.sampled_from(["metrics.json", "report.md", "index.html"]))
def test_cv_checks_every_report_file_before_training(project, kind, name):
    shutil.rmtree(project / "targets", ignore_errors=True)
    two_articles(project)
    make_target(project, kind, name)
    output = refused_before_any_work(project, "cv", "--bootstrap", "0", "--out", "targets")
    assert "fold 1" not in output.lower()


def test_evaluate_still_replaces_its_own_reports(project):
    first = invoke("evaluate", "gold/gold.jsonl", "--bootstrap", "0", "--out", "targets")
    assert first.exit_code == 0, first.output
    again = invoke("evaluate", "gold/gold.jsonl", "--bootstrap", "0", "--out", "targets")
    assert again.exit_code == 0, again.output
    assert json.loads((project / "targets" / "metrics.json").read_text(encoding="utf-8"))["systems"]


# --- pull: the acceptance figures are a target like gold and the pulled file -------------------------


@pytest.mark.parametrize("kind", IN_FOLDER_KINDS)
def test_pull_checks_the_acceptance_file_with_the_others(tmp_path, kind):
    from annotate.acceptance import acceptance_path
    from annotate.corpus import check_pull_targets

    figures = acceptance_path(tmp_path / "pulled.jsonl")
    if kind == "user folder":
        figures.mkdir()
    else:
        figures.symlink_to(tmp_path / ("notes" if kind != "dangling link" else "nowhere"))
    with pytest.raises(TargetError, match=f"^{figures}: is a"):
        check_pull_targets(tmp_path / "pulled.jsonl", tmp_path / "gold.jsonl", tmp_path / "snap.json.gz", figures)


# --- apply: nothing in --out until the model has loaded and every file can be written -----------------


def _source(folder: Path) -> Path:
    path = folder / "articles.jsonl"
    path.write_text(json.dumps({"id": "a1", "text": "Hamas said so."}) + "\n", encoding="utf-8")
    return path


def test_apply_writes_no_manifest_for_a_model_that_does_not_load(tmp_path, ruler_model_dir, schema):
    config = ruler_model_dir / "config.cfg"
    config.write_text(config.read_text(encoding="utf-8").replace('"span_ruler"', '"no_such_factory"'), "utf-8")
    with pytest.raises(TrainingError, match="cannot load the saved pipeline"):
        apply(ruler_model_dir, [_source(tmp_path)], tmp_path / "out", schema=schema, workers=1)
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    with pytest.raises(TrainingError):
        apply(ruler_model_dir, [_source(tmp_path)], tmp_path / "out", schema=schema, workers=1)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("name", ["part-00000.parquet", REJECTS])
def test_apply_checks_every_file_it_writes_before_the_manifest(tmp_path, ruler_model_dir, schema, name):
    out = tmp_path / "out"
    source = _source(tmp_path)
    apply(ruler_model_dir, [source], out, schema=schema, workers=1)
    source.write_text(source.read_text(encoding="utf-8") + "not json\n", encoding="utf-8")  # a new job
    (out / "part-00000.parquet").unlink()
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    (out / name).symlink_to(tmp_path / "notes.txt")
    before = snapshot(tmp_path)
    with pytest.raises(TargetError, match=f"{name}: is a symbolic link"):
        apply(ruler_model_dir, [source], out, schema=schema, workers=1, force=True, skip_bad=True)
    assert snapshot(tmp_path) == before


@examples
@given(kind=st.sampled_from(FOLDER_KINDS))
def test_apply_out_that_is_not_a_folder_is_refused_and_changes_nothing(project, ruler_model_dir, kind):
    shutil.rmtree(project / "targets", ignore_errors=True)
    target = make_target(project, kind, "out")
    source = _source(project)
    refused_before_any_work(project, "apply", ruler_model_dir, source, "--out", target, "--workers", "1")


def test_apply_never_writes_through_a_link_to_an_empty_folder(tmp_path, ruler_model_dir, schema):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TargetError, match="is a symbolic link"):
        apply(ruler_model_dir, [_source(tmp_path)], tmp_path / "out", schema=schema, workers=1)
    assert list((tmp_path / "elsewhere").iterdir()) == []
