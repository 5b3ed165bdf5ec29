"""The terminal and secret rules against a real Label Studio (tests/studio_server.py).

A project title or article id holding terminal markup is listed as it is; ``studio connect`` never
prints a backend URL's password; a URL that answers JSON but is not ``annotate serve`` is refused
and leaves nothing connected.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import write_gold
from annotate.labels import load_schema
from annotate.records import AnnotatedDoc, Article, Span
from annotate.studio.push import push
from tests.conftest import ROOT
from tests.test_bad_input import assert_refused
from tests.test_studio_access import project_elsewhere  # noqa: F401  (fixture)

SCHEMA_FILE = ROOT / "guidelines" / "labels.toml"
SCHEMA = load_schema(SCHEMA_FILE)
TEXT = "Hamas said Israel must go."

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio


@pytest.fixture
def elsewhere(project_elsewhere, monkeypatch):  # noqa: F811  (the imported fixture, as a parameter)
    monkeypatch.setenv("COLUMNS", "300")  # rich's width: no table cell wrapped
    return project_elsewhere


class _AnyJson(BaseHTTPRequestHandler):
    """A web service that is not an ML backend: ``{}`` to everything."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def json_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnyJson)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_titles_and_ids_with_markup_are_listed_as_they_are(elsewhere, tmp_path):
    title = f"[/]News [bold]{uuid.uuid4().hex[:6]}"
    push(elsewhere, [Article("[/]d", TEXT)], title=title, schema=SCHEMA)
    listed = CliRunner().invoke(app, ["studio", "projects"], terminal_width=300)
    assert listed.exit_code == 0 and "MarkupError" not in listed.output, listed.output
    assert title in listed.output

    (task,) = [entries[0][0] for entries in elsewhere.task_index(elsewhere.project(title)).values()]
    elsewhere.annotate(task, [Span.from_offsets(TEXT, 0, 5, "ACTOR")])
    gold = tmp_path / "gold.jsonl"
    write_gold(gold, [AnnotatedDoc("kept", "Kept.")])
    arguments = ["pull", "--project", title, "--gold", str(gold), "--pulled", str(tmp_path / "p.jsonl"), "--dry-run"]
    result = CliRunner().invoke(app, arguments, terminal_width=300)
    assert result.exit_code == 0 and "MarkupError" not in result.output, result.output
    rows = [[cell.strip() for cell in line.split("│") if cell.strip()] for line in result.output.splitlines()]
    assert ["[/]d", "ACTOR", "1", "0", "0", "0"] in rows
    assert f"Pulled {title!r}" in result.output


def test_connect_refuses_a_json_service_that_is_no_backend_and_never_prints_its_password(elsewhere, json_service):
    title = f"Connect {uuid.uuid4().hex[:6]}"
    push(elsewhere, [Article("a", TEXT)], title=title, schema=SCHEMA)
    url = f"http://user:s3cret@127.0.0.1:{json_service}"
    result = CliRunner().invoke(app, ["studio", "connect", "--backend-url", url, "--project", title])
    assert_refused(result)
    assert "s3cret" not in result.output and "http://***@127.0.0.1" in result.output
    assert "named no model version: not `annotate serve`? (nothing was connected)" in result.output
    assert elsewhere.ml_backends(elsewhere.project(title)) == []

    result = CliRunner().invoke(app, ["studio", "connect", "--backend-url", "http://user:s3cret@127.0.0.1:1"])
    assert_refused(result)
    assert "s3cret" not in result.output
