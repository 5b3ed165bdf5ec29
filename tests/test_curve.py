"""The learning curve by article: which subsets, what is scored on what, what the reading says.

Training runs use a few steps on gold made by the rule component from three seed articles (the
figures mean nothing; which articles train and which are scored, and the arithmetic, are checked).
"""

from __future__ import annotations

import json
import re
import shutil
from math import comb
from random import Random

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import write_gold
from annotate.curve import DEFAULT_REPEATS, Curve, CurveRun, LastStep, check_sizes, learning_curve, training_subsets
from annotate.errors import TrainingError
from tests.conftest import silver_docs

TINY = {"training.max_steps": 4, "training.eval_frequency": 2}


@pytest.fixture(scope="module")
def silver(project_root, schema):
    """Three articles here: a curve needs sizes 1 and 2 with an article left to score."""
    return silver_docs(project_root, schema, 3)


def test_subsets_are_distinct_seeded_and_all_of_them_when_few():
    ids = [f"a{n}" for n in range(5)]
    two = training_subsets(ids, 2, 3, Random(0))
    assert len(set(two)) == 3 and all(len(subset) == 2 for subset in two)
    assert two == training_subsets(ids, 2, 3, Random(0))
    assert training_subsets(ids, 4, 9, Random(0)) == training_subsets(ids, 4, 5, Random(1))
    assert len(training_subsets(ids, 4, 9, Random(0))) == comb(5, 4)


def test_sizes_must_leave_an_article_to_score_on():
    assert check_sizes([3, 1, 1], 5) == [1, 3]
    with pytest.raises(TrainingError, match=r"--sizes must be between 1 and 4 .* got \[5, 0\]"):
        check_sizes([5, 0, 2], 5)
    with pytest.raises(TrainingError, match="at least 2 articles"):
        check_sizes([1], 1)


def _run(size: int, repeat: int, micro: float) -> CurveRun:
    f1 = {schema: {"ACTOR": micro, "micro": micro} for schema in ("strict", "partial")}
    return CurveRun(size, repeat, ("a",), ("b",), f1, 1.0)


def test_summary_and_reading_of_the_last_step():
    curve = Curve(["ACTOR"], [1, 2], [_run(1, 1, 0.2), _run(1, 2, 0.4), _run(2, 1, 0.5), _run(2, 2, 0.5)])
    one = curve.summary()[1]["strict"]["micro"]
    assert one["mean"] == pytest.approx(0.3) and one["std"] == pytest.approx(0.1414, abs=1e-4)
    assert (one["min"], one["max"], one["runs"]) == (0.2, 0.4, 2)
    step = curve.last_step("strict")
    assert step.gain == pytest.approx(0.2) and step.still_rising and step.beyond_spread
    assert step.reading("strict") == (
        "strict micro F1: 1 → 2 articles still raises F1 (0.300 → 0.500, +0.200; spread ±0.141: "
        "more than the spread between repeats)"
    )
    flat = LastStep(3, 4, 0.50, 0.49, 0.05)
    assert not flat.still_rising and not flat.beyond_spread
    assert "no longer raises F1" in flat.reading("partial") and "may be noise" in flat.reading("partial")
    assert json.loads(json.dumps(curve.to_dict()))["last_step"]["strict"]["gain"] == pytest.approx(0.2)


@pytest.mark.slow
def test_curve_trains_on_subsets_and_scores_the_other_articles(silver, schema, small_config):
    curve = learning_curve(
        silver,
        config_path=small_config,
        labels=schema.names,
        sizes=[1, 2],
        repeats=2,
        seed=3,
        overrides=TINY,
    )
    ids = {doc.id for doc in silver}
    assert [run.size for run in curve.runs] == [1, 1, 2, 2]
    for run in curve.runs:
        assert len(run.train) == run.size and set(run.train).isdisjoint(run.test)
        assert set(run.train) | set(run.test) == ids
        assert set(run.f1) == {"strict", "partial"} and set(run.f1["strict"]) == {*schema.names, "micro"}
    assert len({run.train for run in curve.runs}) == 4
    summary = curve.summary()
    for size in (1, 2):
        values = [run.f1["partial"]["micro"] for run in curve.runs if run.size == size]
        assert summary[size]["partial"]["micro"]["mean"] == pytest.approx(sum(values) / 2)
    assert curve.source["repeats"] == 2 and curve.source["overrides"] == TINY


@pytest.mark.slow
def test_curve_command_writes_curve_json_and_plot(silver, project_root, tmp_path, monkeypatch, small_config):
    (tmp_path / "pyproject.toml").write_text('[tool.annotate]\ngold = "gold/gold.jsonl"\n', encoding="utf-8")
    shutil.copytree(project_root / "guidelines", tmp_path / "guidelines")
    (tmp_path / "configs").mkdir()
    shutil.copy(small_config, tmp_path / "configs" / "spancat.cfg")  # a model, not the recipe, is what is needed
    write_gold(tmp_path / "gold" / "gold.jsonl", silver)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["curve", "--sizes", "1,2", "--repeats", "1", "--steps", "4", "--out", "out"])
    assert result.exit_code == 0, result.output
    by_size = r"strict micro F1 by training articles \(mean ± sd over repeats\): 1: [\d.]+ ±0\.000, 2: [\d.]+ ±0\.000"
    assert re.search(by_size, result.output)
    assert re.search(r"strict micro F1: 1 → 2 articles (still|no longer) raises F1", result.output)
    written = json.loads((tmp_path / "out" / "curve.json").read_text(encoding="utf-8"))
    assert written["sizes"] == [1, 2] and written["provenance"]["overrides"] == {"training.max_steps": 4}
    assert (tmp_path / "out" / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_curve_command_default_repeats_is_the_library_default():
    import inspect

    from annotate.cli.reports import curve_cli

    assert inspect.signature(curve_cli).parameters["repeats"].default == DEFAULT_REPEATS


def test_curve_command_refuses_bad_sizes(tmp_path, monkeypatch):
    result = CliRunner().invoke(app, ["curve", "--sizes", "1,x"])
    assert result.exit_code != 0 and "expected comma-separated whole numbers" in result.output
