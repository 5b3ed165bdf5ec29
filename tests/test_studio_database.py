"""Choosing the local Label Studio's database, without starting anything (annotate/studio/postgres.py).

The servers themselves run in tests/test_studio_postgres.py.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.errors import StudioDatabaseError
from annotate.studio import local, postgres
from annotate.studio.postgres import Database, choose, parse_url, prepare

SECRET = "s3cr%2Ft"  # percent-encoded in the URL: the password is "s3cr/t"


@pytest.fixture
def folders(tmp_path) -> local.StudioPaths:
    found = local.StudioPaths(tmp_path)
    found.data.mkdir(parents=True, mode=0o700)
    return found


def _store(folders: local.StudioPaths, **fields) -> Path:
    config = postgres.DatabasePaths.under(folders.folder).config
    stored = {"engine": "postgresql", "host": "127.0.0.1", "port": 5432, "name": "ls", "user": "ls", "password": "pw"}
    config.write_text(json.dumps({**stored, "local": False, **fields}), encoding="utf-8")
    config.chmod(0o600)
    return config


def _start(folders: local.StudioPaths, engine: str | None = None, url: str | None = None):
    """What ``studio up`` does before Label Studio starts: choose, then make ready."""
    return prepare(folders, choose(folders, engine, url))


def test_a_url_names_host_port_database_user_and_password():
    assert parse_url(f"postgresql://ls:{SECRET}@db.example.org:6543/label_studio") == Database(
        "postgresql", "db.example.org", 6543, "label_studio", "ls", "s3cr/t"
    )
    assert parse_url("postgres://ls@10.0.0.5/ls").port == 5432


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"mysql://ls:{SECRET}@host/db", "not a PostgreSQL URL"),
        (f"postgresql://ls:{SECRET}@host:99999/db", "the port is not a number from 1 to 65535"),
        (f"postgresql://ls:{SECRET}@host/", "needs a user, a host and a database"),
        (f"postgresql://ls:{SECRET}@host/db?sslmode=require", "set libpq's variables (PGSSLMODE"),
    ],
)
def test_a_bad_url_is_one_line_without_its_password(url, reason):
    with pytest.raises(StudioDatabaseError, match=reason.replace("(", r"\(")) as failure:
        parse_url(url)
    assert SECRET not in str(failure.value) and "s3cr" not in str(failure.value)
    assert "***@host" in str(failure.value)


def test_sqlite_stays_the_default_and_writes_no_settings(folders):
    first = _start(folders)
    assert first == postgres.Prepared(Database("sqlite"), first_start=True)
    (folders.data / "label_studio.sqlite3").write_bytes(b"")
    assert not _start(folders, "sqlite").first_start
    assert not (folders.folder / "database.json").exists()


def test_a_project_on_sqlite_does_not_move_to_an_empty_postgresql(folders):
    (folders.data / "label_studio.sqlite3").write_bytes(b"")
    with pytest.raises(StudioDatabaseError, match="keeps its data in SQLite, and on PostgreSQL it would start empty"):
        _start(folders, "postgresql")
    with pytest.raises(StudioDatabaseError, match="keeps its data in SQLite"):
        _start(folders, url="postgresql://ls:pw@127.0.0.1:1/ls")
    assert not (folders.folder / "database.json").exists()


def test_a_project_on_postgresql_keeps_it(folders):
    _store(folders, local=True)
    kept = "this project's Label Studio keeps its data in the project's own PostgreSQL in .studio/postgres"
    with pytest.raises(StudioDatabaseError, match=f"{kept}; drop --database sqlite, or move .studio/ away"):
        choose(folders, "sqlite")
    with pytest.raises(StudioDatabaseError, match=f"{kept}; drop --database-url"):
        choose(folders, url="postgresql://ls:pw@127.0.0.1:1/ls")


def test_a_database_elsewhere_that_does_not_answer_is_one_line(folders):
    port = local.free_port()
    with pytest.raises(StudioDatabaseError) as failure:
        _start(folders, url=f"postgresql://ls:{SECRET}@127.0.0.1:{port}/ls")
    assert str(failure.value).startswith(f"cannot reach PostgreSQL at 127.0.0.1:{port} (Connection refused)")
    config = folders.folder / "database.json"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert json.loads(config.read_text(encoding="utf-8"))["password"] == "s3cr/t"
    # Later starts keep that database; a new URL for it (moved, new password) replaces the stored one.
    with pytest.raises(StudioDatabaseError, match=f"127.0.0.1:{port}"):
        _start(folders)
    with pytest.raises(StudioDatabaseError, match=f"127.0.0.1:{port + 1}"):
        _start(folders, "postgresql", url=f"postgresql://ls:new@127.0.0.1:{port + 1}/ls")
    assert json.loads(config.read_text(encoding="utf-8"))["password"] == "new"


def test_settings_others_can_read_are_refused(folders):
    _store(folders).chmod(0o644)
    with pytest.raises(StudioDatabaseError, match="readable by other users \\(mode 644\\); it holds the database"):
        _start(folders)


def test_label_studio_gets_exactly_our_database_settings():
    inherited = {"PATH": "/bin", "LABEL_STUDIO_DJANGO_DB": "mysql", "HEARTEX_POSTGRE_HOST": "x", "DATABASE_NAME": "y"}
    database = Database("postgresql", "127.0.0.1", 5555, "ls", "user", "pw", local=True)
    assert database.environment(inherited) == {
        "PATH": "/bin",
        "DJANGO_DB": "postgresql",
        "POSTGRE_HOST": "127.0.0.1",
        "POSTGRE_PORT": "5555",
        "POSTGRE_NAME": "ls",
        "POSTGRE_USER": "user",
        "POSTGRE_PASSWORD": "pw",
    }
    assert Database().environment(inherited) == {"PATH": "/bin", "DJANGO_DB": "sqlite"}
    assert "pw" not in repr(database)


def test_the_stored_password_matches_what_postgresql_itself_stores():
    """A verifier PostgreSQL 15 made for "pencil" (CREATE ROLE … PASSWORD 'pencil'), rebuilt from its salt."""
    made_by_postgresql = (
        "SCRAM-SHA-256$4096:adHZGeiC1LMgtG6t68L4Lg==$ktcoH8fmb4Ap30RkF7cPhh2IFHaBH/KsJX/N4IiZ4VQ=:"
        "2oUAp95xle0KP5JFHcwYl9BrJ+ydurEkt26v74o+Vq0="
    )
    assert postgres.scram_verifier("pencil", base64.b64decode("adHZGeiC1LMgtG6t68L4Lg==")) == made_by_postgresql


def test_as_root_the_cluster_runs_as_the_postgres_account(monkeypatch):
    pwd = pytest.importorskip("pwd")
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres account on this machine")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    command = postgres._as_owner(["postgres", "-D", "x"])
    assert Path(command[0]).name == "setpriv" and command[-4:] == ["--", "postgres", "-D", "x"]
    assert command[1:4] == [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert postgres._as_owner(["postgres"]) == ["postgres"]


def test_cli_unknown_database_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("label_studio")  # `studio up` looks for the server first
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["studio", "up", "--port", str(local.free_port()), "--database", "mysql"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: unknown database 'mysql'; choose sqlite or postgresql"
