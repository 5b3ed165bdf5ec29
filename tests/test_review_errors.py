"""Errors reviewed in Label Studio, on the real test server: `annotate review-errors`, a reviewer's fix, `pull`.

Each article of the gold goes to the project once, its gold spans as an annotation and the model's
spans as a prediction; a re-run changes nothing, changed predictions replace stale ones, and the
reviewer's correction comes back into the gold with `annotate pull --project`. The HTML report's
errors link to the project's tasks.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import read_gold, write_gold
from annotate.lsformat import span_result
from annotate.review import review_pairs
from tests.conftest import span
from tests.report_fixture import gold_docs, predicted_docs, write_fixed_evaluation

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio


def _regions(results) -> list[tuple]:
    values = [result["value"] for result in results]
    return sorted((value["start"], value["end"], value["labels"][0], value["text"]) for value in values)


def _as_regions(spans) -> list[tuple]:
    return sorted((s.start, s.end, s.label, s.text) for s in spans)


@pytest.fixture
def workspace(tmp_path, monkeypatch, local_studio, project_root):
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.annotate]\nschema = "{project_root / "guidelines" / "labels.toml"}"\ngold = "gold/gold.jsonl"\n'
        'guidelines = "none.md"\n',
        encoding="utf-8",
    )
    write_gold(tmp_path / "gold" / "gold.jsonl", gold_docs())
    write_gold(tmp_path / "predictions.jsonl", predicted_docs())
    monkeypatch.chdir(tmp_path)
    env = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token}

    def annotate(*arguments: str) -> str:
        result = CliRunner().invoke(app, list(arguments), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    return tmp_path, annotate


def test_review_project_holds_gold_and_predictions_and_a_fix_comes_back(workspace, local_studio):
    root, annotate = workspace
    title = f"Errors {uuid.uuid4().hex[:8]}"
    output = annotate("review-errors", "predictions.jsonl", "--project", title)
    assert f"Created project {title!r}" in output
    assert "3 article(s) imported with the gold as annotation, 0 already there" in output
    assert "3 attached, 0 unchanged, 0 stale removed" in output

    connection = local_studio.connect()
    project = connection.project(title)
    tasks = {doc_id: found[0][0] for doc_id, found in connection.task_index(project).items()}
    assert sorted(tasks) == ["hostile", "plain", "third"]
    exported = {task["data"]["doc_id"]: task for task in json.loads(connection.export_json(project))}
    pairs = {pair.gold.id: pair for pair in review_pairs(gold_docs(), predicted_docs())}
    for doc_id, task in exported.items():
        (annotation,) = task["annotations"]
        assert _regions(annotation["result"]) == _as_regions(pairs[doc_id].gold.spans)
        (prediction,) = connection.predictions(tasks[doc_id])
        assert _regions(prediction["result"]) == _as_regions(pairs[doc_id].predicted.spans)
        assert prediction["score"] == pairs[doc_id].score < 1
        assert prediction["model_version"].startswith("predictions-")

    again = annotate("review-errors", "predictions.jsonl", "--project", title)
    assert "0 article(s) imported with the gold as annotation, 3 already there" in again
    assert "0 attached, 3 unchanged, 0 stale removed" in again

    # the report's errors link to this project's tasks
    write_fixed_evaluation(root / "reports")
    assert "errors link to 3 task(s)" in annotate("report", "reports", "--project", title)
    page = (root / "reports" / "index.html").read_text(encoding="utf-8")
    assert f"{local_studio.url}/projects/{project.id}/data?task={tasks['plain']}" in page

    # the reviewer agrees with the model on the DEMAND's edges and updates the gold annotation
    plain = gold_docs()[1]
    fixed = [s for s in plain.spans if s.label != "DEMAND"] + [span(plain.text, "full withdrawal", "DEMAND")]
    annotation_id = exported["plain"]["annotations"][0]["id"]
    answer = httpx.patch(
        f"{local_studio.url}/api/annotations/{annotation_id}",
        headers={"Authorization": f"Token {local_studio.token}"},
        json={"result": [span_result(s) for s in fixed]},
    )
    answer.raise_for_status()
    annotate("pull", "--project", title)
    pulled = {doc.id: doc for doc in read_gold(root / "gold" / "gold.jsonl")}
    assert pulled["plain"].spans == tuple(sorted(fixed))
    assert {doc_id: doc.spans for doc_id, doc in pulled.items() if doc_id != "plain"} == {
        doc.id: doc.spans for doc in gold_docs() if doc.id != "plain"
    }

    # other predictions are a new version, shown from now on; the reviewed annotation is left alone
    changed = [doc.with_spans(doc.spans[:1]) for doc in predicted_docs()]
    write_gold(root / "predictions.jsonl", changed)
    third = annotate("review-errors", "predictions.jsonl", "--project", title)
    assert "0 article(s) imported" in third and "3 attached, 0 unchanged, 0 stale removed" in third
    versions = {p["model_version"]: _regions(p["result"]) for p in connection.predictions(tasks["plain"])}
    assert len(versions) == 2 and _as_regions(changed[1].spans) in versions.values()
    reviewed = {t["data"]["doc_id"]: t for t in json.loads(connection.export_json(project))}["plain"]
    assert [_regions(a["result"]) for a in reviewed["annotations"]] == [_as_regions(fixed)]


def test_review_errors_refuses_predictions_of_other_articles(workspace):
    root, _ = workspace
    write_gold(root / "predictions.jsonl", predicted_docs()[:2])
    result = CliRunner().invoke(app, ["review-errors", "predictions.jsonl", "--project", "Never made"])
    assert result.exit_code == 1
    assert result.output == "Error: predictions.jsonl: predictions lack 1 gold article(s), first third\n"
