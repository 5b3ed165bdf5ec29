"""Our own artifacts are validated on read, one validation per artifact (as gold's): metrics.json, curve.json,
apply's manifest and shards, predictions files, agreement figures for publish.

Random JSON with wrong types in every field (or a key removed) is either still what the writer
would write (then the command works) or refused: one ``Error:`` line, a non-zero exit, no
traceback, and every file that was there byte-identical.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from annotate.artifacts import Each, Maybe, shape_problem
from annotate.cli import app
from annotate.corpus import write_gold
from annotate.errors import AnnotateError, InputError
from annotate.records import AnnotatedDoc, Span
from tests.conftest import ROOT
from tests.test_bad_input import assert_refused, snapshot

runner = CliRunner()
TEXT = "Hamas said Israel must go."
GOLD = [
    AnnotatedDoc("a", TEXT, (Span.from_offsets(TEXT, 0, 5, "ACTOR"), Span.from_offsets(TEXT, 11, 17, "ACTOR"))),
    AnnotatedDoc("b", "Israel said no.", (Span.from_offsets("Israel said no.", 0, 6, "ACTOR"),)),
]
examples = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
wrong = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value (keys of objects, indices of lists), the value itself first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:3]):
            found += _paths(inner, (*prefix, index))
    return found


@st.composite
def damaged(draw, document: dict) -> dict:
    """``document`` with one field (anywhere) given a random value of any type, or removed."""
    document = json.loads(json.dumps(document))
    place = draw(st.sampled_from(_paths(document)[1:]))
    parent = document
    for step in place[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[place[-1]]
    else:
        parent[place[-1]] = draw(wrong)
    return document


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """A project with gold, an evaluation folder (metrics.json, predictions) and a curve.json beside it."""
    root = tmp_path_factory.mktemp("artifacts") / "project"
    (root / "guidelines").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.annotate]\nproject = "News spans"\n', encoding="utf-8")
    shutil.copy(ROOT / "guidelines" / "labels.toml", root / "guidelines" / "labels.toml")
    write_gold(root / "gold" / "gold.jsonl", GOLD)
    arguments = ["evaluate", "gold/gold.jsonl", "--gold", "gold/gold.jsonl", "--out", "reports", "--bootstrap", "0"]
    import os

    here = Path.cwd()
    os.chdir(root)
    try:
        result = runner.invoke(app, arguments)
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    step = {"from_size": 1, "to_size": 2, "from_f1": 0.5, "to_f1": 0.6, "gain": 0.1, "spread": 0.05}
    curve = {
        "provenance": {"repeats": 2},
        "labels": ["ACTOR"],
        "sizes": [1, 2],
        "last_step": {"strict": {**step, "still_rising": True, "beyond_spread": True}, "partial": None},
    }
    (root / "reports" / "curve.json").write_text(json.dumps(curve), encoding="utf-8")
    return root


@pytest.fixture
def project(evaluated, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(evaluated, root)
    monkeypatch.chdir(root)
    return root


def handled(project: Path, arguments: list[str], outputs: tuple[str, ...]) -> None:
    before = snapshot(project)
    result = runner.invoke(app, arguments)
    if result.exit_code == 0:
        assert "Traceback" not in result.output
        kept = {key: value for key, value in before.items() if not key.startswith(outputs)}
        assert {key: snapshot(project).get(key) for key in kept} == kept
        return
    assert_refused(result)
    assert snapshot(project) == before


def _metrics(root: Path) -> dict:
    return json.loads((root / "reports" / "metrics.json").read_text(encoding="utf-8"))


@examples
@given(data=st.data())
def test_a_metrics_file_of_any_shape_is_one_line_or_a_report(evaluated, project, data):
    document = data.draw(damaged(_metrics(evaluated)))
    (project / "reports" / "metrics.json").write_text(json.dumps(document), encoding="utf-8")
    handled(project, ["report", "reports", "--gold", "gold/gold.jsonl"], ("reports/index.html",))


@examples
@given(data=st.data())
def test_a_curve_file_of_any_shape_is_one_line_or_a_report(evaluated, project, data):
    original = json.loads((evaluated / "reports" / "curve.json").read_text(encoding="utf-8"))
    (project / "reports" / "curve.json").write_text(json.dumps(data.draw(damaged(original))), encoding="utf-8")
    handled(project, ["report", "reports", "--gold", "gold/gold.jsonl"], ("reports/index.html",))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "the top level: expected an object, found a list"),
        ({"systems": []}, "systems: expected an object, found a list"),
        ({"systems": {"x": {"labels": "ACTOR"}}}, "systems.x.labels: expected a list, found text"),
        (
            {"systems": {"x": {"labels": [], "articles": [], "scores": {"strict": {"micro": {"f1": "1"}}}}}},
            "systems.x.scores.strict.micro: no 'precision'",
        ),
    ],
)
def test_a_malformed_metrics_file_names_the_key(project, document, reason):
    (project / "reports" / "metrics.json").write_text(json.dumps(document), encoding="utf-8")
    result = runner.invoke(app, ["report", "reports", "--gold", "gold/gold.jsonl"])
    assert_refused(result)
    assert f"reports/metrics.json: not a metrics file of annotate ({reason}" in result.output


def test_predictions_with_unknown_ids_or_spans_outside_the_text_are_refused_by_report_and_review(project, schema):
    from annotate.review import predictions_for_review

    path = project / "reports" / "predictions-predictions.jsonl"
    extra = AnnotatedDoc("zzz", "Other text.", ())
    outside = json.loads(json.dumps(GOLD[1].to_dict()))
    outside["spans"][0].update(start=9, end=40)
    cases = {
        "an unknown id": (GOLD + [extra], "predictions have 1 article(s) not in gold, first zzz"),
        "a span outside the text": (None, "1 problem(s) in the predictions"),
    }
    for what, (docs, reason) in cases.items():
        if docs is None:
            lines = [json.dumps(GOLD[0].to_dict()), json.dumps(outside)]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            write_gold(path, docs)
        result = runner.invoke(app, ["report", "reports", "--gold", "gold/gold.jsonl"])
        assert_refused(result)
        assert reason in result.output, what
        with pytest.raises(AnnotateError, match=re.escape(reason)):
            predictions_for_review(path, GOLD, schema)


def test_the_shapes_check_every_kind_of_value():
    shape = {"n": int, "x": float, "t": str, "b": bool, "l": [str], "p": (int, int), "m": Maybe(Each(int))}
    good = {"n": 1, "x": 1, "t": "", "b": False, "l": ["a"], "p": [1, 2]}
    assert shape_problem(good, shape) == "" and shape_problem({**good, "m": {"a": 1}}, shape) == ""
    assert shape_problem({**good, "n": True}, shape) == "n: expected an integer, found true"
    assert shape_problem({**good, "x": "1"}, shape) == "x: expected a number, found text"
    assert shape_problem({**good, "p": [1]}, shape) == "p: expected 2 values, found 1"
    assert shape_problem({**good, "l": ["a", 3]}, shape) == "l[1]: expected text, found 3"
    assert shape_problem({**good, "m": {"k": None}}, shape) == "m.k: expected an integer, found null"
    assert shape_problem({k: v for k, v in good.items() if k != "b"}, shape) == "the top level: no 'b'"


# --- apply's manifest and shards ---------------------------------------------------------------


@pytest.fixture
def applied(tmp_path, ruler_model_dir, monkeypatch) -> tuple[Path, list[str]]:
    """An apply output of two shards, and the command that wrote it (a rerun resumes)."""
    root = tmp_path / "project"
    (root / "guidelines").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.annotate]\nproject = "News spans"\n', encoding="utf-8")
    shutil.copy(ROOT / "guidelines" / "labels.toml", root / "guidelines" / "labels.toml")
    lines = [json.dumps({"id": f"a{n}", "text": f"Hamas said {n}."}) for n in range(4)]
    (root / "src.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copytree(ruler_model_dir, root / "model")
    monkeypatch.chdir(root)
    command = ["apply", "model", "src.jsonl", "--out", "out", "--shard-size", "2", "--workers", "1"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    return root, command


@examples
@given(data=st.data())
def test_a_manifest_of_any_shape_is_one_line_or_a_resume(applied, data):
    root, command = applied
    path = root / "out" / ".apply-manifest.json"
    original = path.read_bytes()
    try:
        path.write_text(json.dumps(data.draw(damaged(json.loads(original)))), encoding="utf-8")
        handled(root, command, ("out/",))
    finally:
        path.write_bytes(original)


def test_a_corrupted_shard_stops_a_resume_with_one_line_naming_it(applied):
    root, command = applied
    shard = root / "out" / "part-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-20] + b"\0" * 20)
    before = snapshot(root)
    result = runner.invoke(app, command)
    assert_refused(result)
    assert "out/part-00001.parquet: changed since annotate apply wrote it" in result.output
    assert snapshot(root) == before
    shard.unlink()
    assert runner.invoke(app, command).exit_code == 0  # deleted: its articles are labelled again
    assert shard.is_file()


def test_a_manifest_naming_a_file_apply_never_writes_is_refused(applied):
    root, command = applied
    path = root / "out" / ".apply-manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["shards"][0]["file"] = "../src.jsonl"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="shard file '../src.jsonl' is not one apply writes"):
        from annotate.apply import read_manifest

        read_manifest(root / "out")
    assert_refused(runner.invoke(app, command))


# --- agreement figures for publish -------------------------------------------------------------


@pytest.fixture
def agreement_file(project) -> Path:
    from annotate.agreement import agreement
    from annotate.convert import blank_pipeline
    from annotate.labels import load_schema
    from annotate.records import PulledAnnotation

    doc = GOLD[0]
    alice = PulledAnnotation(1, 1, doc.id, "alice", doc.spans, text_sha256=doc.text_sha256)
    bob = PulledAnnotation(1, 2, doc.id, "bob", doc.spans[:1], text_sha256=doc.text_sha256)
    names = load_schema(project / "guidelines" / "labels.toml").names
    report = agreement([alice, bob], {doc.id: doc.text}, names, blank_pipeline("en"))
    path = project / "reports" / "agreement.json"
    path.write_text(json.dumps(report.to_dict(include_disagreements=False)), encoding="utf-8")
    return path


@examples
@given(data=st.data())
def test_agreement_figures_of_any_shape_are_one_line_or_a_card(project, agreement_file, data):
    original = agreement_file.read_bytes()
    try:
        agreement_file.write_text(json.dumps(data.draw(damaged(json.loads(original)))), encoding="utf-8")
        handled(project, ["publish", "published", "--gold", "gold/gold.jsonl"], ("published", ".pseudonyms"))
    finally:
        agreement_file.write_bytes(original)
        shutil.rmtree(project / "published", ignore_errors=True)


def test_malformed_agreement_figures_are_refused_before_the_card(project, agreement_file):
    figures = json.loads(agreement_file.read_text(encoding="utf-8"))
    figures["annotators"] = [{"name": "alice"}]
    agreement_file.write_text(json.dumps(figures), encoding="utf-8")
    result = runner.invoke(app, ["publish", "published", "--gold", "gold/gold.jsonl"])
    assert_refused(result)
    assert (
        "not agreement figures of annotate agreement (annotators[0]: expected text, found an object)" in result.output
    )
    assert not (project / "published").exists()
