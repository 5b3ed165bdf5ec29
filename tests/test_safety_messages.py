"""Messages and accepted-but-wrong input: every refusal is one line that names the option, file or URL, and
no line ever shows a URL's password.

Covers: numbers out of range (``push --batch-size``, ``curve --steps``, ``apply --workers``), an
``--out`` that is a symbolic link, a JSONL line with ``text`` twice, backend URLs that are not
``http(s)://host``, servers that are not HTTP at all, and the safety net's line for an error no
reader translated.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.cli._util import unexpected
from annotate.corpus import write_gold
from annotate.errors import StudioProjectError, redact_urls
from annotate.records import AnnotatedDoc, Span
from annotate.studio import local
from annotate.studio.link import checked_backend_url
from tests.test_bad_input import _serve, assert_refused, new_project, snapshot

runner = CliRunner()
TEXT = "Hamas said Israel must go."


@pytest.fixture
def project(tmp_path, monkeypatch, ruler_model_dir) -> Path:
    """test_bad_input's project, with three gold articles (a curve needs more than one), a model and a source."""
    root = new_project(tmp_path / "project")
    docs = [AnnotatedDoc(f"d{n}", f"{TEXT} {n}", (Span.from_offsets(TEXT, 0, 5, "ACTOR"),)) for n in range(3)]
    write_gold(root / "gold" / "gold.jsonl", docs)
    (root / "src.jsonl").write_text('{"id": "a", "text": "Hamas"}\n', encoding="utf-8")
    shutil.copytree(ruler_model_dir, root / "model")
    monkeypatch.chdir(root)
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens: nothing may be asked
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-real-key")
    return root


def refused(project: Path, *arguments: str) -> str:
    before = snapshot(project)
    result = runner.invoke(app, list(arguments))
    assert_refused(result)
    assert snapshot(project) == before
    return result.output


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (("push", "--batch-size", "0"), "--batch-size must be at least 1 (tasks per import request), not 0"),
        (("push", "--batch-size", "-1"), "--batch-size must be at least 1 (tasks per import request), not -1"),
        (
            ("curve", "--steps", "0", "--out", "curve-out"),
            "--steps must be at least 1 (training steps per model), not 0",
        ),
        (("curve", "--steps", "-3", "--out", "curve-out"), "--steps must be at least 1"),
        (
            ("apply", "model", "src.jsonl", "--out", "out", "--workers", "0"),
            "workers and batch size must be at least 1",
        ),
    ],
)
def test_numbers_out_of_range_are_one_line_before_any_work(project, command, reason):
    assert reason in refused(project, *command)


def test_a_report_folder_that_is_a_symbolic_link_is_never_written_through(project):
    """(``apply``, ``evaluate``, ``cv``, ``run`` and ``curve`` check their --out before any work:
    tests/test_all_or_nothing.py.)"""
    (project / "real").mkdir()
    (project / "linked").symlink_to(project / "real")
    assert "linked: is a symbolic link; not replacing it" in refused(project, "report", "linked")
    assert not any((project / "real").iterdir())


def test_an_article_line_with_text_twice_is_refused_by_apply_as_by_push(project):
    (project / "src.jsonl").write_text(
        '{"id": "a", "text": "Hamas"}\n{"id": "b", "text": "first", "text": "second"}\n', encoding="utf-8"
    )
    reason = "src.jsonl:2: key 'text' appears twice in one object"
    assert reason in refused(project, "apply", "model", "src.jsonl", "--out", "out")
    assert reason in refused(project, "push", "src.jsonl")


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "file:///etc/passwd", "localhost:9090", "http://", "http://host:99999", "http://a b"]
)
def test_a_backend_url_label_studio_would_refuse_is_one_line_before_it_is_asked(project, url):
    with pytest.raises(StudioProjectError, match="expected http:// or https:// and a host"):
        checked_backend_url(url)
    output = refused(project, "studio", "connect", "--backend-url", url)
    assert "expected http:// or https:// and a host" in output and "127.0.0.1:9" not in output


def test_a_backend_url_never_shows_its_password(project):
    output = refused(project, "studio", "connect", "--backend-url", "ftp://user:s3cret@host")
    assert "s3cret" not in output and "ftp://***@host" in output
    output = refused(project, "studio", "connect", "--backend-url", "http://user:s3cret@127.0.0.1:1")
    assert "s3cret" not in output  # Label Studio is not there: the line names it, not the backend's password
    assert redact_urls("at http://u:p@h:1/x and https://v:q@k") == "at http://***@h:1/x and https://***@k"


def test_a_server_that_is_not_http_is_not_label_studio_to_the_local_server_checks():
    listener, held = _serve(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert local.health(url) is False
        assert local.server_version(url) == ""
    finally:
        listener.close()
        for connection in held:
            connection.close()
    listener, held = _serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")
    try:
        assert local.health(f"http://127.0.0.1:{listener.getsockname()[1]}") is False  # JSON, not an object
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (RecursionError(), "input nested too deeply (while running `annotate gold stats weird.jsonl`)"),
        (
            UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
            "UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800' in position 0: surrogates not "
            "allowed (while running `annotate gold stats weird.jsonl`)",
        ),
    ],
)
def test_the_safety_net_names_the_command_and_its_files(project, monkeypatch, error, line):
    import annotate.gold

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(annotate.gold, "gold_stats", fail)
    write_gold(project / "weird.jsonl", [AnnotatedDoc("w", TEXT, ())])
    result = runner.invoke(app, ["gold", "stats", "weird.jsonl"])
    assert_refused(result)
    assert result.output == f"Error: {line}\n"
    assert unexpected(OSError(13, "Permission denied", "x.json")) == "x.json: Permission denied"


def test_every_error_line_hides_a_urls_password(project, monkeypatch):
    from annotate.errors import InputError

    def fail(*args, **kwargs):
        raise InputError("cannot use http://user:s3cret@host:9 (nor \ud800)")

    monkeypatch.setattr("annotate.gold.gold_stats", fail)
    result = runner.invoke(app, ["gold", "stats", "gold/gold.jsonl"])
    assert_refused(result)
    assert result.output == "Error: cannot use http://***@host:9 (nor \\ud800)\n"
    assert os.environ["LABEL_STUDIO_URL"] == "http://127.0.0.1:9"
