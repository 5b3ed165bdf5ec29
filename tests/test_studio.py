"""The Label Studio round trip against a real server (one per session, see tests/studio_server.py).

Each test uses a project of its own, so the order of tests does not matter.
"""

from __future__ import annotations

import logging
import stat
import threading
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotate import lsformat
from annotate.articles import read_articles
from annotate.cli import app
from annotate.corpus import read_gold, read_pulled, write_gold
from annotate.errors import PortBusyError, PullError, StudioAuthError, StudioProjectError, StudioUnreachable
from annotate.labels import instructions_html, load_schema
from annotate.model import load_predictor
from annotate.records import AnnotatedDoc, Article, Span
from annotate.studio import local
from annotate.studio.client import Studio
from annotate.studio.pull import project_slug, pull
from annotate.studio.push import push

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio


@pytest.fixture
def title():
    return f"Test {uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def connection(local_studio):
    return local_studio.connect()


def _pull(connection, title, schema, tmp_path, policy=lsformat.DEFAULT_POLICY, gold_name="gold.jsonl"):
    return pull(
        connection,
        title=title,
        schema=schema,
        gold_path=tmp_path / gold_name,
        pulled_path=tmp_path / "pulled.jsonl",
        snapshots=tmp_path / "snapshots",
        policy=policy,
    )


def _task_ids(connection, title) -> dict[str, int]:
    index = connection.task_index(connection.project(title))
    return {doc_id: tasks[0][0] for doc_id, tasks in index.items()}


def _content(docs):
    """What a round trip must keep exactly: id, text, its hash and every span."""
    return [(d.id, d.text, d.text_sha256, d.spans) for d in sorted(docs, key=lambda d: d.id)]


def test_round_trip_pulled_gold_equals_the_gold(connection, settings, schema, title, tmp_path):
    gold = read_gold(settings.gold)
    assert sum(len(d.spans) for d in gold) > 400, "the round trip runs on the project's whole gold"
    report = push(connection, read_articles([settings.seeds]), title=title, schema=schema)
    assert report.created_project and report.imported == len(read_articles([settings.seeds]))
    tasks = _task_ids(connection, title)
    for doc in gold:
        connection.annotate(tasks[doc.id], doc.spans)
    pulled = _pull(connection, title, schema, tmp_path)
    assert _content(read_gold(tmp_path / "gold.jsonl")) == _content(gold)
    assert pulled.repairs == [] and pulled.gold_docs == len(gold)
    assert sum(pulled.diff.added.values()) == sum(len(d.spans) for d in gold)
    assert all(d.source == f"label-studio:{title} task {tasks[d.id]}" for d in read_gold(tmp_path / "gold.jsonl"))
    again = _pull(connection, title, schema, tmp_path)
    assert again.diff.is_empty and sum(again.diff.unchanged.values()) == sum(len(d.spans) for d in gold)
    assert len(list((tmp_path / "snapshots").rglob("*.json.gz"))) == 2


def test_repush_adds_zero_tasks_and_reports_changed_text(connection, settings, schema, title):
    articles = read_articles([settings.seeds])
    push(connection, articles, title=title, schema=schema)
    again = push(connection, articles, title=title, schema=schema)
    assert (again.imported, again.already_present, again.created_project, again.config_updated) == (
        0,
        len(articles),
        False,
        False,
    )
    edited = Article(articles[0].id, articles[0].text + " Edited.")
    changed = push(connection, [edited], title=title, schema=schema)
    assert changed.text_changed == [articles[0].id] and changed.imported == 0
    index = connection.task_index(connection.project(title))
    assert sorted(index) == sorted(a.id for a in articles)
    assert all(len(tasks) == 1 for tasks in index.values())


def test_edited_guidelines_reach_the_project_as_rendered_html(connection, settings, schema, title):
    articles = read_articles([settings.seeds])[:1]
    first = push(connection, articles, title=title, schema=schema, instructions=instructions_html("# v1"))
    assert first.created_project and not first.instructions_updated
    guide = "# Guide v2\n\n| label | hotkey |\n| --- | --- |\n| ACTOR | a |\n\nQuoted `<script>x</script>`\n"
    second = push(connection, articles, title=title, schema=schema, instructions=instructions_html(guide))
    assert second.instructions_updated and not second.config_updated
    stored = connection.project(title).instructions
    assert "<h1>Guide v2</h1>" in stored and "<table>" in stored
    assert "<script>" not in stored and "&lt;script&gt;" in stored
    third = push(connection, articles, title=title, schema=schema, instructions=instructions_html(guide))
    assert not third.instructions_updated


def test_server_killed_during_push_then_push_again_gives_every_article_once(local_studio, schema, title):
    articles = [Article(f"doc{n:05d}", f"Article {n}: Hamas said “talks” — 😀 {n}.") for n in range(3000)]
    connection = local_studio.connect()
    killed = threading.Event()

    def kill_soon(done: int, total: int) -> None:
        if done >= 400 and not killed.is_set():
            killed.set()
            threading.Timer(0.05, local_studio.kill).start()

    with pytest.raises(StudioUnreachable) as failure:
        push(
            connection,
            articles,
            title=title,
            schema=schema,
            batch_size=200,
            attempts=2,
            backoff_s=0.1,
            progress=kill_soon,
        )
    assert "run push again to finish" in str(failure.value)
    local_studio.restart()
    report = push(local_studio.connect(), articles, title=title, schema=schema, batch_size=200)
    index = local_studio.connect().task_index(local_studio.connect().project(title))
    assert sorted(index) == [a.id for a in articles]
    assert all(len(tasks) == 1 for tasks in index.values())
    assert report.already_present + report.imported == len(articles) and report.already_present >= 400


def test_two_annotators_cancelled_and_draft(connection, schema, title, tmp_path):
    text = "Hamas said Israel must withdraw."
    push(connection, [Article("one", text), Article("two", text)], title=title, schema=schema)
    tasks = _task_ids(connection, title)
    second = connection.add_user(f"annotator-{uuid.uuid4().hex[:6]}@example.org")
    hamas, israel = Span.from_offsets(text, 0, 5, "ACTOR"), Span.from_offsets(text, 11, 17, "ACTOR")
    first_id = connection.annotate(tasks["one"], [hamas])
    connection.annotate(tasks["one"], [hamas, israel], user_id=second)
    connection.annotate(tasks["two"], [], cancelled=True)
    connection.save_draft(tasks["two"], [israel])
    report = _pull(connection, title, schema, tmp_path)
    assert (report.annotations, report.cancelled, report.drafts, report.gold_docs) == (3, 1, 1, 1)
    assert sorted(report.per_annotator.values()) == [1, 2]
    pulled = read_pulled(tmp_path / "pulled.jsonl")
    assert sorted((a.doc_id, len(a.spans), a.was_cancelled) for a in pulled) == [
        ("one", 1, False),
        ("one", 2, False),
        ("two", 0, True),
    ]
    (latest,) = read_gold(tmp_path / "gold.jsonl")
    assert latest.spans == (hamas, israel) and latest.annotator.startswith("annotator-")
    first_only = _pull(connection, title, schema, tmp_path, policy="ground-truth-only", gold_name="gt.jsonl")
    assert first_only.gold_docs == 0 and read_gold(tmp_path / "gt.jsonl") == []
    assert any(a.annotation_id == first_id for a in pulled)


def test_pull_updates_the_labeled_articles_and_keeps_the_rest_unless_replace(connection, schema, title, tmp_path):
    text = "Hamas said Israel"
    push(connection, [Article("kept", text), Article("unlabelled", text)], title=title, schema=schema)
    tasks = _task_ids(connection, title)
    connection.annotate(tasks["kept"], [Span.from_offsets(text, 0, 5, "ACTOR")])
    unlabelled = AnnotatedDoc("unlabelled", text, (Span.from_offsets(text, 11, 17, "ACTOR"),), "gold-v1", "seeds/u.txt")
    previous = [AnnotatedDoc("kept", text, source="seeds/kept.txt"), unlabelled]
    write_gold(tmp_path / "gold.jsonl", previous)
    report = _pull(connection, title, schema, tmp_path)
    assert report.kept == ["unlabelled"] and report.diff.docs_removed == []
    assert dict(report.diff.added) == {"ACTOR": 1} and dict(report.diff.unchanged) == {"ACTOR": 1}
    merged = {doc.id: doc for doc in read_gold(tmp_path / "gold.jsonl")}
    assert merged["unlabelled"] == unlabelled, "an article the project did not label keeps its gold"
    assert merged["kept"].spans == (Span.from_offsets(text, 0, 5, "ACTOR"),)
    assert merged["kept"].source == f"seeds/kept.txt | label-studio:{title} task {tasks['kept']}"
    replaced = pull(
        connection,
        title=title,
        schema=schema,
        gold_path=tmp_path / "gold.jsonl",
        pulled_path=tmp_path / "pulled.jsonl",
        snapshots=tmp_path / "snapshots",
        replace=True,
        origins={"kept": "elsewhere/kept.txt"},
    )
    assert replaced.diff.docs_removed == ["unlabelled"] and replaced.kept == []
    (only,) = read_gold(tmp_path / "gold.jsonl")
    assert only.id == "kept" and only.source == f"elsewhere/kept.txt | label-studio:{title} task {tasks['kept']}"


def test_push_with_predictions_onto_tasks_already_there(connection, schema, title, ruler_model_dir, tmp_path):
    text = "Talks 😀: Hamas and Israel."
    articles = [Article("a", text), Article("b", "Hamas said so.")]
    push(connection, articles, title=title, schema=schema)
    predictor = load_predictor(ruler_model_dir, schema)
    first = push(connection, articles, title=title, schema=schema, predictor=predictor)
    assert (first.imported, first.predictions_added, first.predictions_updated) == (0, 2, 0)
    tasks = _task_ids(connection, title)
    (prediction,) = connection.predictions(tasks["a"])
    assert prediction["model_version"] == predictor.model_version
    again = push(connection, articles, title=title, schema=schema, predictor=predictor)
    assert (again.predictions_added, again.predictions_updated, again.predictions_unchanged) == (0, 0, 2)
    # A stale prediction of the same version (say, from an interrupted run) is replaced, not doubled.
    stale = connection.project(title)
    (current,) = connection.predictions(tasks["b"])
    connection.delete_prediction(int(current["id"]))
    connection.import_predictions(
        stale, [{"task": tasks["b"], **lsformat.prediction_payload([], predictor.model_version, 0.5)}]
    )
    fixed = push(connection, articles, title=title, schema=schema, predictor=predictor)
    assert (fixed.predictions_added, fixed.predictions_updated, fixed.predictions_unchanged) == (0, 1, 1)
    assert len(connection.predictions(tasks["b"])) == 1
    shown = connection.next_task(connection.project(title))
    assert shown is not None and [p["model_version"] for p in shown.get("predictions", [])] == [predictor.model_version]


def test_emoji_before_a_span_in_code_points_and_in_utf16(connection, schema, title, tmp_path):
    text = "Talks 😀 resume. Hamas said 🇵🇸 flags flew over “Gaza”."
    push(connection, [Article("emoji", text)], title=title, schema=schema)
    (task,) = _task_ids(connection, title).values()
    gaza = Span.from_offsets(text, text.index("Gaza"), text.index("Gaza") + 4, "ACTOR")
    hamas = Span.from_offsets(text, 16, 21, "ACTOR")
    assert hamas.text == "Hamas"
    utf16 = lsformat.span_result(gaza)
    utf16["value"]["start"] = lsformat.utf16_offset(text, gaza.start)
    utf16["value"]["end"] = lsformat.utf16_offset(text, gaza.end)
    connection.annotate(task, results=[lsformat.span_result(hamas), utf16])
    report = _pull(connection, title, schema, tmp_path)
    (doc,) = read_gold(tmp_path / "gold.jsonl")
    assert doc.spans == (hamas, gaza)
    (repair,) = report.repairs
    assert repair.span == gaza and f"repaired from UTF-16 offsets [{gaza.start + 3}:{gaza.end + 3}]" in repair.reason


def test_unknown_label_and_text_mismatch_stop_the_pull_and_keep_gold(connection, schema, title, tmp_path):
    text = "Hamas said Israel"
    push(connection, [Article("bad", text)], title=title, schema=schema)
    (task,) = _task_ids(connection, title).values()
    unknown = lsformat.span_result(Span.from_offsets(text, 0, 5, "ACTOR"))
    unknown["value"]["labels"] = ["PERSON"]
    mismatch = lsformat.span_result(Span(11, 17, "ACTOR", "Israeli"))
    annotation = connection.annotate(task, results=[unknown, mismatch])
    before = b'{"id": "previous", "text": "Old gold.", "spans": []}\n'
    (tmp_path / "gold.jsonl").write_bytes(before)
    with pytest.raises(PullError) as failure:
        _pull(connection, title, schema, tmp_path)
    problems = [str(problem) for problem in failure.value.problems]
    where = f"task {task} annotation {annotation} (admin@annotate.local): bad"
    assert problems == [
        f"{where}: [0:5] PERSON 'Hamas': label PERSON is not in the schema (ACTOR, DEMAND, FIGURE, ATTRIBUTION)",
        f"{where}: [11:17] ACTOR 'Israeli': text at these offsets is 'Israel', not 'Israeli' "
        "(nor read as UTF-16 units)",
    ]
    assert (tmp_path / "gold.jsonl").read_bytes() == before
    assert not (tmp_path / "pulled.jsonl").exists()
    assert not (tmp_path / "snapshots").exists(), "a refused pull writes no snapshot"


def test_schema_change_that_orphans_used_labels_is_refused(connection, schema, title, tmp_path):
    text = "Hamas said 40 people"
    push(connection, [Article("x", text)], title=title, schema=schema)
    (task,) = _task_ids(connection, title).values()
    connection.annotate(task, [Span.from_offsets(text, 11, 20, "FIGURE")])
    schema_file = tmp_path / "labels.toml"
    source = Path(schema.path).read_text(encoding="utf-8")
    schema_file.write_text(source.split('[[label]]\nname = "FIGURE"')[0], encoding="utf-8")
    smaller = load_schema(schema_file)
    assert "FIGURE" not in smaller
    with pytest.raises(StudioProjectError, match="drops label\\(s\\) FIGURE that annotations use"):
        push(connection, [Article("x", text)], title=title, schema=smaller)


def test_predictions_from_a_saved_pipeline(connection, schema, title, tmp_path, ruler_model_dir):
    predictor = load_predictor(ruler_model_dir, schema)
    assert predictor.model_version.startswith("model-best-") and len(predictor.model_version) == len("model-best-") + 12
    text = "Talks 😀: Hamas and Israel."
    report = push(connection, [Article("p", text)], title=title, schema=schema, predictor=predictor)
    assert report.with_predictions == 1
    (task,) = _task_ids(connection, title).values()
    (prediction,) = connection.predictions(task)
    assert prediction["model_version"] == predictor.model_version
    spans = sorted(Span.from_dict({**r["value"], "label": r["value"]["labels"][0]}) for r in prediction["result"])
    assert spans == [Span.from_offsets(text, 9, 14, "ACTOR"), Span.from_offsets(text, 19, 25, "ACTOR")]
    assert [span.text for span in spans] == ["Hamas", "Israel"]
    assert _pull(connection, title, schema, tmp_path).predictions == 1


# --- the local server's lifecycle and errors, through the CLI ---------------------------------------


def test_up_refuses_a_busy_port_and_keeps_credentials_private(local_studio, tmp_path, monkeypatch):
    with pytest.raises(PortBusyError, match=f"port {local_studio.port} on 127.0.0.1 is already in use"):
        local.up(tmp_path, port=local_studio.port)
    credentials = local.StudioPaths(local_studio.root).credentials
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert local.down(tmp_path) is None
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["studio", "up", "--port", str(local_studio.port)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: port {local_studio.port} on 127.0.0.1 is already in use; stop what uses it or choose another "
        f"with --port (Label Studio would silently move to port {local_studio.port + 1})"
    )
    assert local.local_url(local_studio.root) == local_studio.url


def test_status_names_the_version_and_the_user(local_studio, monkeypatch):
    monkeypatch.chdir(local_studio.root)
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["studio", "status"])
    assert result.exit_code == 0, result.output
    assert f"{local_studio.url}: answering, Label Studio 1.23" in result.output
    assert "API key accepted (user admin@annotate.local)" in result.output
    assert local_studio.token not in result.output


def _run_with(monkeypatch, folder, url, key, *arguments):
    monkeypatch.chdir(folder)
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    if key is None:
        monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    else:
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", key)
    return CliRunner().invoke(app, list(arguments))


WRONG_KEY = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"


@pytest.mark.parametrize("command", [["pull", "--project", "Whatever"], ["studio", "status"]])
def test_wrong_key_is_one_line_without_the_key(local_studio, monkeypatch, project_root, caplog, command):
    caplog.set_level(logging.DEBUG)
    result = _run_with(monkeypatch, project_root, local_studio.url, WRONG_KEY, *command)
    assert result.exit_code == 1
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error_lines == [
        f"Error: Label Studio at {local_studio.url} refused the API key (HTTP 401 during "
        + ("checking the API key" if command[0] == "studio" else "looking up project 'Whatever'")
        + "); check LABEL_STUDIO_API_KEY (a legacy token or a personal access token)"
    ]
    assert WRONG_KEY not in result.output and WRONG_KEY not in caplog.text
    assert local_studio.token not in result.output


def test_wrong_key_exception_chain_carries_no_key(local_studio):
    with pytest.raises(StudioAuthError) as failure:
        Studio(local_studio.url, WRONG_KEY).find_project("x")
    error = failure.value
    assert error.__cause__ is None and error.__context__ is None
    assert WRONG_KEY not in repr(error) and WRONG_KEY not in str(error.args)


def test_missing_key_is_one_line(monkeypatch, project_root, local_studio):
    result = _run_with(monkeypatch, project_root, local_studio.url, None, "pull", "--project", "x")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: no API key for Label Studio at {local_studio.url}: set LABEL_STUDIO_API_KEY "
        "(or run `annotate studio up`)"
    )


def test_unreachable_url_is_one_line(monkeypatch, tmp_path, project_root):
    url = f"http://127.0.0.1:{local.free_port()}"
    (tmp_path / "a.txt").write_text("Hamas said.", encoding="utf-8")
    result = _run_with(monkeypatch, project_root, url, WRONG_KEY, "push", "--project", "Somewhere", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: cannot reach Label Studio at {url} (ConnectError during looking up project 'Somewhere'); "
        "is it running? (`annotate studio status`)"
    )
    assert WRONG_KEY not in result.output


def test_cli_push_and_pull_print_summaries(local_studio, monkeypatch, tmp_path, settings, title):
    monkeypatch.chdir(local_studio.root)
    (local_studio.root / "pyproject.toml").write_text(
        "[tool.annotate]\n"
        f'schema = "{settings.schema}"\nseeds = "{settings.seeds}"\ngold = "gold/gold.jsonl"\n'
        f'project = "{title}"\n',
        encoding="utf-8",
    )
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    pushed = runner.invoke(app, ["push"])
    assert pushed.exit_code == 0, pushed.output
    assert f"Created project {title!r}" in pushed.output and "5 article(s) imported, 0 already there" in pushed.output
    again = runner.invoke(app, ["push"])
    assert "0 article(s) imported, 5 already there" in again.output
    pulled = runner.invoke(app, ["pull"])
    assert pulled.exit_code == 0, pulled.output
    assert "tasks without annotations" in pulled.output and "Wrote " in pulled.output
    assert read_gold(local_studio.root / "gold/gold.jsonl") == []
    slug = project_slug(title)
    assert (local_studio.root / "gold" / "pulled" / f"{slug}.jsonl").exists()
