"""An empty Submit on a real Label Studio: pull refuses it by default, names the tasks, and keeps
it as a zero-span gold article only with ``--allow-empty``; ``gold check`` then warns about it."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from annotate import lsformat
from annotate.cli import app
from annotate.corpus import read_gold
from annotate.labels import load_schema
from annotate.records import AnnotatedDoc, Article, PulledAnnotation, Span
from annotate.settings import load_settings
from annotate.studio.push import push

pytest_plugins = ["tests.studio_server"]

TEXT = "Hamas said 40 people were killed."
HAMAS = Span.from_offsets(TEXT, 0, 5, "ACTOR")


def test_empty_submissions_are_the_gold_articles_with_no_spans_and_their_tasks():
    def pulled(task_id, doc_id, *spans):
        return PulledAnnotation(task_id=task_id, annotation_id=task_id, doc_id=doc_id, annotator="a", spans=spans)

    gold = [AnnotatedDoc("full", TEXT, (HAMAS,)), AnnotatedDoc("empty", TEXT)]
    assert lsformat.empty_submissions(gold, [pulled(3, "full", HAMAS), pulled(7, "empty")]) == [(7, "empty")]


@pytest.mark.studio
def test_pull_refuses_an_empty_submit_unless_allowed_and_gold_check_warns(
    local_studio, project_root, tmp_path, monkeypatch
):
    schema = load_schema(load_settings(project_root).schema)
    title = f"Empty {uuid.uuid4().hex[:10]}"
    connection = local_studio.connect()
    articles = [Article(doc_id, TEXT) for doc_id in ("full", "empty", "skipped")]
    push(connection, articles, title=title, schema=schema)
    tasks = {doc_id: found[0][0] for doc_id, found in connection.task_index(connection.project(title)).items()}
    connection.annotate(tasks["full"], [HAMAS])
    connection.annotate(tasks["empty"], [])
    connection.annotate(tasks["skipped"], [], cancelled=True)

    monkeypatch.chdir(project_root)
    monkeypatch.setenv("LABEL_STUDIO_URL", local_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", local_studio.token)
    gold = tmp_path / "gold.jsonl"
    where = ["--project", title, "--gold", str(gold), "--pulled", str(tmp_path / "p.jsonl")]
    where += ["--snapshots", str(tmp_path / "snapshots")]

    refused = CliRunner().invoke(app, ["pull", *where])
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"Error: 1 article(s) of {title!r} submitted with no spans: task {tasks['empty']} (empty); nothing written. "
        "Annotators should Skip an article rather than submit it empty; pass --allow-empty to keep them as gold "
        "with no spans\n"
    )
    assert not gold.exists() and not (tmp_path / "p.jsonl").exists()

    allowed = CliRunner().invoke(app, ["pull", *where, "--allow-empty"])
    assert allowed.exit_code == 0, allowed.output
    assert f"Submitted with no spans: task {tasks['empty']} (empty); kept as gold with zero spans" in allowed.stdout
    assert {doc.id: doc.spans for doc in read_gold(gold)} == {"empty": (), "full": (HAMAS,)}, "skipped is not gold"

    checked = CliRunner().invoke(app, ["gold", "check", str(gold)])
    assert checked.exit_code == 0, checked.output
    assert checked.stderr.splitlines() == [
        f"Warning: {gold}:1: empty: no spans (an empty Submit? annotators should Skip; `pull --allow-empty` accepts it)"
    ]
