"""Who can reach the local server and its data: `.studio/` for its owner only, `--host`, the login shown again.

Against the real Label Studio of the test session (tests/studio_server.py).
"""

from __future__ import annotations

import contextlib
import socket
import stat

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.corpus import write_gold
from annotate.errors import StudioAuthError
from annotate.labels import load_schema
from annotate.model import load_predictor
from annotate.records import AnnotatedDoc, Article, Span
from annotate.studio import client, local
from annotate.studio.push import push
from tests.conftest import ROOT

SCHEMA_FILE = ROOT / "guidelines" / "labels.toml"
SCHEMA = load_schema(SCHEMA_FILE)

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio


@pytest.fixture
def in_project(local_studio, monkeypatch):
    """Run commands from the test server's project folder, with no URL or key in the environment."""
    monkeypatch.chdir(local_studio.root)
    for name in (client.URL_ENV, client.KEY_ENV):
        monkeypatch.delenv(name, raising=False)
    return local_studio


def test_the_whole_studio_folder_is_for_its_owner_only(in_project):
    paths = local.StudioPaths(in_project.root)
    for folder in (paths.folder, paths.data):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in (paths.credentials, paths.log, paths.data / "label_studio.sqlite3"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    written = [p for p in paths.data.rglob("*") if p.is_file()]
    assert written and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in written)


def test_the_server_log_holds_neither_the_token_nor_the_password(in_project):
    """gunicorn and Label Studio both write to .studio/server.log; neither may write the preset login into it."""
    paths = local.StudioPaths(in_project.root)
    in_project.connect().whoami()  # at least one authenticated request has been served and logged
    log = paths.log.read_text(encoding="utf-8")
    credentials = local.read_credentials(paths.credentials)
    assert "Booting worker" in log  # the log the workers write to is the one read here
    assert credentials.token not in log and credentials.password not in log


@pytest.mark.parametrize("folder", ["folder", "data"])
def test_up_and_status_refuse_a_studio_folder_others_can_read(in_project, folder):
    paths = local.StudioPaths(in_project.root)
    target = getattr(paths, folder)
    target.chmod(0o755)
    try:
        status = CliRunner().invoke(app, ["studio", "status"])
        assert status.exit_code == 1
        assert status.output.strip() == (
            f"Error: {target}: readable by other users (mode 755); it holds the API token, "
            f"so run chmod -R go-rwx {paths.folder}"
        )
        with pytest.raises(StudioAuthError, match="readable by other users"):
            local.up(in_project.root, port=in_project.port)
    finally:
        target.chmod(0o700)


def test_status_shows_the_url_and_the_login_again(in_project):
    result = CliRunner().invoke(app, ["studio", "status"])
    assert result.exit_code == 0, result.output
    credentials = local.read_credentials(local.StudioPaths(in_project.root).credentials)
    assert f"Log in at {in_project.url} as {credentials.email} with password {credentials.password}" in result.output
    assert credentials.token not in result.output


def test_localhost_is_the_same_local_server(in_project, monkeypatch):
    monkeypatch.setenv(client.URL_ENV, f"http://localhost:{in_project.port}/")
    result = CliRunner().invoke(app, ["studio", "status"])
    assert result.exit_code == 0, result.output
    assert "API key accepted (user admin@annotate.local)" in result.output
    assert local.same_server("http://[::1]:8080", "http://127.0.0.1:8080")
    assert not local.same_server("http://localhost:8081", "http://127.0.0.1:8080")
    assert not local.same_server("https://127.0.0.1:8080", "http://127.0.0.1:8080")


def test_a_notebook_in_the_project_connects_without_arguments(in_project):
    assert client.connect().whoami() == "admin@annotate.local"


def test_host_other_than_loopback_warns_and_names_the_address(in_project):
    result = CliRunner().invoke(app, ["studio", "up", "--host", "0.0.0.0", "--port", str(in_project.port)])
    assert "Warning: listening on 0.0.0.0: anyone who can reach this machine" in result.output
    # The session's server already runs here, so `up` finds it rather than starting a second one.
    assert result.exit_code == 0, result.output
    assert f"Label Studio already running at {in_project.url}" in result.output


def _outside_address() -> str | None:
    """This machine's address on its network (None when it has only loopback)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        address = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


@pytest.mark.slow
def test_up_on_all_addresses_answers_from_the_network_address(local_studio):
    """The session's server, stopped and started again on all addresses: a restart of seconds on its
    folder instead of a first start of its own (a minute of migrations), then back on loopback."""
    root = local_studio.root
    assert local.down(root) == local_studio.pid
    try:
        port = local.free_port()
        info = local.up(root, port=port, host="0.0.0.0", timeout=300)
        try:
            assert not info.first_start
            assert info.url == f"http://127.0.0.1:{port}" and local.health(info.url)
            address = _outside_address()
            if address is not None:
                assert local.health(f"http://{address}:{port}")
            assert stat.S_IMODE(local.StudioPaths(root).folder.stat().st_mode) == 0o700
        finally:
            assert local.down(root) == info.pid
    finally:
        local_studio.restart()
    assert local.health(local_studio.url) and not local.health(f"http://127.0.0.1:{port}")


@pytest.fixture
def project_elsewhere(local_studio, tmp_path, monkeypatch):
    """A project folder of its own that talks to the session's server through the environment."""
    (tmp_path / "pyproject.toml").write_text(f'[tool.annotate]\nschema = "{SCHEMA_FILE}"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(client.URL_ENV, local_studio.url)
    monkeypatch.setenv(client.KEY_ENV, local_studio.token)
    return local_studio.connect()


def test_projects_lists_counts_and_an_unknown_project_names_the_known_ones(project_elsewhere, ruler_model_dir):
    connection, title = project_elsewhere, "Counted projects here"
    text = "Hamas said Israel must go."
    articles = [Article("one", text), Article("two", "Israel said no.")]
    push(connection, articles, title=title, schema=SCHEMA)
    predictor = load_predictor(ruler_model_dir, SCHEMA)
    push(connection, articles[:1], title=title, schema=SCHEMA, predictor=predictor)
    index = connection.task_index(connection.project(title))
    connection.annotate(index["one"][0][0], [Span.from_offsets(text, 0, 5, "ACTOR")])
    (summary,) = [p for p in connection.projects() if p.title == title]
    assert (summary.tasks, summary.annotated, summary.predictions) == (2, 1, 1)
    listed = CliRunner().invoke(app, ["studio", "projects"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.output.splitlines() if title in line]
    assert [cell.strip() for cell in row.split("│") if cell.strip()][1:] == [title, "2", "1", "1"]
    unknown = CliRunner().invoke(app, ["pull", "--project", "Not a project", "--dry-run"])
    assert unknown.exit_code == 1
    assert f"'{title}'" in unknown.stderr and "`annotate studio projects` lists them" in unknown.stderr


def test_pull_dry_run_shows_the_changes_and_writes_nothing(project_elsewhere, tmp_path):
    connection, title = project_elsewhere, "Dry run project"
    text = "Hamas said Israel must go."
    push(connection, [Article("dry", text)], title=title, schema=SCHEMA)
    (task,) = [entries[0][0] for entries in connection.task_index(connection.project(title)).values()]
    connection.annotate(task, [Span.from_offsets(text, 0, 5, "ACTOR"), Span.from_offsets(text, 11, 17, "ACTOR")])
    gold = tmp_path / "gold.jsonl"
    hamas = Span.from_offsets(text, 0, 5, "ACTOR")
    write_gold(gold, [AnnotatedDoc("dry", text, (hamas,)), AnnotatedDoc("kept", "Kept.")])
    before = gold.read_bytes()
    arguments = ["pull", "--project", title, "--gold", str(gold), "--snapshots", str(tmp_path / "snapshots")]
    arguments += ["--pulled", str(tmp_path / "pulled.jsonl"), "--dry-run"]
    result = CliRunner().invoke(app, arguments, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert gold.read_bytes() == before
    assert not (tmp_path / "snapshots").exists() and not (tmp_path / "pulled.jsonl").exists()
    rows = [[cell.strip() for cell in line.split("│") if cell.strip()] for line in result.output.splitlines()]
    assert ["dry", "ACTOR", "1", "0", "0", "1"] in rows
    assert "Would keep 1 article(s) of the previous gold" in result.output
    assert f"Dry run: nothing written; {gold} would hold 2 article(s)" in result.output


def test_only_a_loopback_server_accepts_ml_backends_on_private_addresses(tmp_path):
    """SSRF protection is lifted for `annotate serve` on loopback only; a server others reach keeps it."""
    credentials = local.Credentials("admin@localhost", "pw", "t" * 40)
    loopback = local.server_environment(tmp_path, credentials)
    assert loopback["ML_BLOCK_LOCAL_IP"] == loopback["SSRF_PROTECTION_ENABLED"] == "false"
    shared = local.server_environment(tmp_path, credentials, "0.0.0.0")
    assert "ML_BLOCK_LOCAL_IP" not in shared and "SSRF_PROTECTION_ENABLED" not in shared
    # A Data Manager "Retrieve predictions" over many tasks is one /predict: Label Studio waits for it.
    assert loopback["ML_TIMEOUT_PREDICT"] == shared["ML_TIMEOUT_PREDICT"] == "3600"
    # Label Studio's default prediction import recounts the whole project on every request.
    assert loopback[local.BATCHED_PREDICTION_IMPORT] == shared[local.BATCHED_PREDICTION_IMPORT] == "true"
