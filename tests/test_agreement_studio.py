"""Several annotators on a real Label Studio: users who log in, agreement and adjudication on
``--project``, a review set sent back as predictions, and a reviewer's ground truth.

The annotators sign up through the invite link and log in through the login form over HTTP, then
annotate with personal access tokens of their own, as their browsers would. One server per session
(tests/studio_server.py); each test uses a project of its own.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import httpx
import pytest
from typer.testing import CliRunner

from annotate import lsformat
from annotate.cli import app
from annotate.corpus import read_gold
from annotate.records import Article, Span
from annotate.studio.client import Studio
from annotate.studio.pull import pull
from annotate.studio.push import push
from tests.conftest import span

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio

PASSWORD = "Lab3l-the-news!"

AGREED = "Hamas said 40 people were killed."
SPLIT = "Hamas officials demanded a ceasefire."
EMOJI = "Talks 😀 resume. خليل الحية said “no”."


NAME = span(EMOJI, "خليل الحية", "ACTOR")
QUOTE = span(EMOJI, "خليل الحية said “no”", "ATTRIBUTION")
HAMAS = span(SPLIT, "Hamas", "ACTOR")
OFFICIALS = span(SPLIT, "Hamas officials", "ACTOR")
CEASEFIRE = span(SPLIT, "a ceasefire", "DEMAND")
AGREED_SPANS = (span(AGREED, "Hamas", "ACTOR"), span(AGREED, "40 people", "FIGURE"))


@dataclass
class Annotator:
    email: str
    connection: Studio


@pytest.fixture(scope="module")
def admin(local_studio):
    return local_studio.connect()


def _form_post(client: httpx.Client, path: str, fields: dict) -> httpx.Response:
    """GET the form for its CSRF cookie, then POST it as a browser would."""
    client.get(path).raise_for_status()
    fields = {**fields, "csrfmiddlewaretoken": client.cookies["csrftoken"]}
    return client.post(path, data=fields, headers={"Referer": f"{client.base_url}{path}"})


def sign_up(local_studio, email: str) -> None:
    """Sign up with the organisation's invite link (open signup is closed on our server)."""
    invite = httpx.get(f"{local_studio.url}/api/invite", headers={"Authorization": f"Token {local_studio.token}"})
    invite.raise_for_status()
    path = invite.json()["invite_url"]
    with httpx.Client(base_url=local_studio.url) as client:
        answer = _form_post(client, path, {"email": email, "password": PASSWORD})
        assert answer.status_code == 302 and "/user/" not in answer.headers["location"], answer.text[:300]


def log_in(local_studio, email: str, password: str = PASSWORD) -> str | None:
    """Log in through the login form; returns the user's new personal access token, or None if refused."""
    with httpx.Client(base_url=local_studio.url) as client:
        answer = _form_post(client, "/user/login/", {"email": email, "password": password})
        if answer.status_code != 302:
            return None
        created = client.post(
            "/api/token/", headers={"X-CSRFToken": client.cookies["csrftoken"], "Referer": f"{local_studio.url}/"}
        )
        assert created.status_code == 201, created.text[:300]
        return created.json()["token"]


@pytest.fixture(scope="module")
def people(local_studio) -> dict[str, Annotator]:
    """Three annotators and a reviewer, each signed up, logged in, and holding a token of their own."""
    tag = uuid.uuid4().hex[:6]
    found = {}
    for name in ("alice", "bob", "carol", "rita"):
        email = f"{name}-{tag}@example.org"
        sign_up(local_studio, email)
        assert log_in(local_studio, email, "not the password") is None
        token = log_in(local_studio, email)
        assert token and token != local_studio.token
        found[name] = Annotator(email, Studio(local_studio.url, token))
    return found


@pytest.fixture
def title():
    return f"Agreement {uuid.uuid4().hex[:10]}"


@pytest.fixture
def cli(local_studio, monkeypatch, project_root):
    """Run ``annotate`` against the test server as the admin, from the project root."""
    monkeypatch.chdir(project_root)
    monkeypatch.setenv("LABEL_STUDIO_URL", local_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", local_studio.token)

    def invoke(*arguments):
        return CliRunner().invoke(app, [str(a) for a in arguments])

    return invoke


def _tasks(connection, title) -> dict[str, int]:
    return {doc_id: tasks[0][0] for doc_id, tasks in connection.task_index(connection.project(title)).items()}


def _spans(prediction: dict) -> list[Span]:
    return sorted(Span.from_dict({**r["value"], "label": r["value"]["labels"][0]}) for r in prediction["result"])


def test_whoami_is_the_annotator_not_the_admin(people):
    assert {name: person.connection.whoami() for name, person in people.items()} == {
        name: person.email for name, person in people.items()
    }


def test_annotators_per_task_lets_a_second_annotator_have_the_task(admin, people, schema, cli, tmp_path, title):
    (tmp_path / "one.txt").write_text(AGREED, encoding="utf-8")
    first = cli("push", tmp_path, "--project", title)
    assert first.exit_code == 0, first.output
    project = admin.project(title)
    assert project.annotators_per_task == 1  # Label Studio's default
    alice, bob = people["alice"].connection, people["bob"].connection
    task = alice.next_task(project)
    alice.annotate(task["id"], AGREED_SPANS)
    assert alice.next_task(project) is None
    assert bob.next_task(project) is None, "with maximum_annotations 1 the labeling stream skips annotated tasks"

    raised = cli("push", tmp_path, "--project", title, "--annotators-per-task", "2")
    assert raised.exit_code == 0, raised.output
    assert f"Each task of {title!r} now goes to 2 annotator(s)" in raised.output
    assert admin.project(title).annotators_per_task == 2
    assert bob.next_task(project)["id"] == task["id"]
    again = push(admin, [Article("one", AGREED)], title=title, schema=schema, annotators_per_task=2)
    assert not again.annotators_per_task_updated and again.annotators_per_task == 2


def test_agreement_adjudication_review_and_ground_truth(admin, people, schema, cli, tmp_path, title):
    articles = [Article("agreed", AGREED), Article("emoji", EMOJI), Article("split", SPLIT)]
    push(admin, articles, title=title, schema=schema, annotators_per_task=3)
    tasks = _tasks(admin, title)
    alice, bob, carol = (people[name].connection for name in ("alice", "bob", "carol"))
    for person in (alice, bob, carol):
        person.annotate(tasks["agreed"], AGREED_SPANS)
    alice.annotate(tasks["split"], [HAMAS, CEASEFIRE])
    bob.annotate(tasks["split"], [HAMAS])
    carol.annotate(tasks["split"], [OFFICIALS])
    alice.annotate(tasks["emoji"], [NAME, QUOTE])
    carol.annotate(tasks["emoji"], [NAME])
    project = admin.project(title)
    model = lsformat.prediction_payload([NAME], "ner-v1", 0.9)
    admin.import_predictions(project, [{"task": tasks["emoji"], **model}])

    # Agreement straight from the project equals agreement on a pulled file.
    from_project = cli("agreement", "--project", title, "--json")
    assert from_project.exit_code == 0, from_project.output
    figures = json.loads(from_project.stdout)
    emails = {name: person.email for name, person in people.items()}
    assert figures["annotators"] == sorted(emails[name] for name in ("alice", "bob", "carol"))
    assert (figures["documents"], figures["documents_shared"]) == (3, 3)
    alice_bob = next(p for p in figures["pairs"] if set(p["annotators"]) == {emails["alice"], emails["bob"]})
    assert alice_bob["documents"] == 2  # bob did not annotate "emoji"
    assert alice_bob["strict"]["overall"]["matched"] == 3 and alice_bob["strict"]["overall"]["f1"] == 0.8571
    pull(
        admin,
        title=title,
        schema=schema,
        gold_path=tmp_path / "pulled-gold.jsonl",
        pulled_path=tmp_path / "pulled.jsonl",
        snapshots=tmp_path / "snapshots",
    )
    texts = tmp_path / "articles"
    texts.mkdir()
    for article in articles:
        (texts / f"{article.id}.txt").write_text(article.text, encoding="utf-8")
    from_file = cli("agreement", tmp_path / "pulled.jsonl", "--articles", texts, "--json")
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.stdout) == figures

    # Adjudication sends the two conflicting articles back as a review set.
    gold = tmp_path / "gold.jsonl"
    first = cli("adjudicate", "--project", title, "--out", gold, "--review")
    assert first.exit_code == 0, first.output
    assert "3 conflict(s)" in first.stdout
    assert (
        f"Review set 'adjudication-min2' in {title!r}: 2 task(s) with candidates "
        "(2 prediction(s) added, 0 unchanged, 0 stale removed)"
    ) in first.stdout
    adjudicated = {doc.id: doc.spans for doc in read_gold(gold)}
    assert adjudicated == {"agreed": AGREED_SPANS, "emoji": (NAME,), "split": (HAMAS,)}
    review = {
        doc_id: [p for p in admin.predictions(task) if p["model_version"] == "adjudication-min2"]
        for doc_id, task in tasks.items()
    }
    assert review["agreed"] == []
    ((split_review,), (emoji_review,)) = review["split"], review["emoji"]
    assert _spans(split_review) == sorted([HAMAS, OFFICIALS, CEASEFIRE]) and split_review["score"] == 0.3333
    assert _spans(emoji_review) == sorted([NAME, QUOTE]) and emoji_review["score"] == 0.5
    shown = people["rita"].connection.next_task(project)  # the one task not yet at 3 annotations
    assert shown["id"] == tasks["emoji"]
    assert [p["model_version"] for p in shown["predictions"]] == ["adjudication-min2"], "the reviewer sees the set"

    again = cli("adjudicate", "--project", title, "--out", gold, "--review")
    assert "(0 prediction(s) added, 2 unchanged, 0 stale removed)" in again.stdout, again.output
    assert [len(admin.predictions(tasks[d])) for d in ("split", "emoji")] == [1, 2]  # emoji keeps ner-v1 too

    # The reviewer decides "split" with a ground-truth annotation, logged in as herself.
    people["rita"].connection.annotate(tasks["split"], [OFFICIALS, CEASEFIRE], ground_truth=True)
    decided = cli("adjudicate", "--project", title, "--out", gold, "--review", "--conflicts-out", tmp_path / "c.jsonl")
    assert decided.exit_code == 0, decided.output
    assert "1 from ground truth" in decided.stdout and "1 conflict(s)" in decided.stdout
    assert "1 task(s) with candidates (0 prediction(s) added, 1 unchanged, 1 stale removed)" in decided.stdout
    (split_doc,) = [doc for doc in read_gold(gold) if doc.id == "split"]
    assert split_doc.spans == (OFFICIALS, CEASEFIRE) and split_doc.annotator == emails["rita"]
    assert "ground truth" in split_doc.source
    assert [p["model_version"] for p in admin.predictions(tasks["split"])] == []
    (conflict,) = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()]
    assert conflict["doc_id"] == "emoji" and conflict["span"] == QUOTE.to_dict()

    # The usual path, pull then adjudicate the pulled file, reaches the same gold.
    pull(
        admin,
        title=title,
        schema=schema,
        gold_path=tmp_path / "pulled-gold.jsonl",
        pulled_path=tmp_path / "pulled.jsonl",
        snapshots=tmp_path / "snapshots",
    )
    from_pull = cli("adjudicate", tmp_path / "pulled.jsonl", "--articles", texts, "--out", tmp_path / "g2.jsonl")
    assert from_pull.exit_code == 0, from_pull.output
    assert read_gold(tmp_path / "g2.jsonl") == read_gold(gold)


def test_review_from_a_pulled_file_into_a_project_without_its_articles_is_refused(admin, schema, cli, tmp_path, title):
    push(admin, [Article("split", SPLIT)], title=title, schema=schema)
    other = f"{title} other"
    push(admin, [Article("unrelated", AGREED)], title=other, schema=schema)
    (task,) = _tasks(admin, title).values()
    admin.annotate(task, [HAMAS])
    second = admin.add_user(f"second-{uuid.uuid4().hex[:6]}@example.org")
    admin.annotate(task, [OFFICIALS], user_id=second)  # as the second annotator's browser would
    pull(
        admin,
        title=title,
        schema=schema,
        gold_path=tmp_path / "pulled-gold.jsonl",
        pulled_path=tmp_path / "pulled.jsonl",
        snapshots=tmp_path / "snapshots",
    )
    texts = tmp_path / "articles"
    texts.mkdir()
    (texts / "split.txt").write_text(SPLIT, encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    refused = cli(
        "adjudicate", tmp_path / "pulled.jsonl", "--articles", texts, "--project", other, "--review", "--out", gold
    )
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"Error: article 'split' is not in project {other!r}; no review set sent (wrong --project?)\n"
    )
    assert not gold.exists()
    sent = cli(
        "adjudicate", tmp_path / "pulled.jsonl", "--articles", texts, "--project", title, "--review", "--out", gold
    )
    assert sent.exit_code == 0, sent.output
    assert "1 task(s) with candidates (1 prediction(s) added" in sent.stdout
    ((prediction,),) = [admin.predictions(task)]
    assert _spans(prediction) == [HAMAS, OFFICIALS] and prediction["score"] == 0.0


def test_unknown_project_is_one_error_line(cli):
    result = cli("agreement", "--project", "No such project here")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no project titled 'No such project here' on http://127.0.0.1:")
    assert len(result.stderr.splitlines()) == 1


def test_invalid_span_in_the_project_lists_every_problem_and_compares_nothing(admin, schema, cli, title):
    push(admin, [Article("bad", SPLIT)], title=title, schema=schema)
    (task,) = _tasks(admin, title).values()
    wrong = lsformat.span_result(Span(0, 5, "ACTOR", "Hamaz"))
    annotation = admin.annotate(task, results=[wrong])
    result = cli("agreement", "--project", title)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"task {task} annotation {annotation} (admin@annotate.local): bad: [0:5] ACTOR 'Hamaz': "
        "text at these offsets is 'Hamas', not 'Hamaz' (nor read as UTF-16 units)",
        f"Error: 1 problem(s) in project {title!r}; fix them in Label Studio first (nothing was compared)",
    ]


def test_review_sets_of_another_k_and_decided_tasks_leave_the_project(admin, schema, cli, tmp_path, title):
    """One review set at a time: a run with another --min-agree replaces the old one, and once a
    ground truth decides the last conflict, the next --review run removes the set and stops showing it."""
    push(admin, [Article("split", SPLIT), Article("agreed", AGREED)], title=title, schema=schema)
    tasks = _tasks(admin, title)
    first, second = (admin.add_user(f"{name}-{uuid.uuid4().hex[:6]}@example.org") for name in ("ann", "ben"))
    admin.annotate(tasks["split"], [HAMAS, CEASEFIRE], user_id=first)
    admin.annotate(tasks["split"], [HAMAS], user_id=second)
    for person in (first, second):
        admin.annotate(tasks["agreed"], AGREED_SPANS, user_id=person)
    project = admin.project(title)
    model = lsformat.prediction_payload([HAMAS], "ner-v1", 0.9)
    admin.import_predictions(project, [{"task": tasks["split"], **model}])
    gold = tmp_path / "gold.jsonl"

    def versions(doc_id):
        return sorted(p["model_version"] for p in admin.predictions(tasks[doc_id]))

    two = cli("adjudicate", "--project", title, "--out", gold, "--review")
    assert two.exit_code == 0, two.output
    assert versions("split") == ["adjudication-min2", "ner-v1"] and admin.shown_version(project) == "adjudication-min2"

    # Another K: its own set replaces the old one (min 3 leaves both articles undecided, all spans candidates).
    three = cli("adjudicate", "--project", title, "--out", gold, "--review", "--min-agree", "3", "--replace")
    assert three.exit_code == 0, three.output
    assert "2 task(s) with candidates (2 prediction(s) added, 0 unchanged, 1 stale removed)" in three.stdout
    assert versions("split") == ["adjudication-min3", "ner-v1"] and versions("agreed") == ["adjudication-min3"]
    assert admin.shown_version(project) == "adjudication-min3"

    # Back to K=2, then a reviewer's ground truth decides "split": the next --review run empties the set.
    again = cli("adjudicate", "--project", title, "--out", gold, "--review", "--replace")
    assert "1 task(s) with candidates (1 prediction(s) added, 0 unchanged, 2 stale removed)" in again.stdout
    admin.annotate(tasks["split"], [HAMAS, CEASEFIRE], ground_truth=True)
    decided = cli("adjudicate", "--project", title, "--out", gold, "--review")
    assert decided.exit_code == 0, decided.output
    assert "0 task(s) with candidates (0 prediction(s) added, 0 unchanged, 1 stale removed)" in decided.stdout
    assert versions("split") == ["ner-v1"] and versions("agreed") == []
    assert admin.shown_version(project) == "", "the project no longer shows a review set that is gone"
    assert {doc.id: doc.spans for doc in read_gold(gold)}["split"] == (HAMAS, CEASEFIRE)
