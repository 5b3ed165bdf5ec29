"""The workflows a team's server must keep, run again on Label Studio backed by PostgreSQL.

Label Studio saves predictions in one transaction only when its database is not SQLite, orders
querysets and locks differently there, so push, pull, the review sets, connect and the refresh
run here against ``postgres_studio`` (``studio up --database postgresql``, one per session).
The test bodies are the SQLite suite's own, imported: in this module ``local_studio`` is the
PostgreSQL-backed server, so every fixture they use (connection, admin, people, cli) talks to it.
Below them, what only PostgreSQL has: the private cluster, and ``--database-url``.
"""

from __future__ import annotations

import json
import shutil
import socket
import stat

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.labels import load_schema
from annotate.records import Article
from annotate.studio import local, postgres
from annotate.studio.client import Studio
from annotate.studio.push import push
from tests.test_agreement_studio import (  # noqa: F401
    admin,
    cli,
    people,
    test_agreement_adjudication_review_and_ground_truth,
    test_review_sets_of_another_k_and_decided_tasks_leave_the_project,
)
from tests.test_backend_studio import (  # noqa: F401
    test_connect_open_a_task_stop_restart_and_a_failed_training,
    test_retraining_from_label_studio_and_uncertainty_sampling,
    tiny,
)
from tests.test_studio import (  # noqa: F401
    connection,
    test_pull_updates_the_labeled_articles_and_keeps_the_rest_unless_replace,
    test_push_with_predictions_onto_tasks_already_there,
    test_round_trip_pulled_gold_equals_the_gold,
    test_two_annotators_cancelled_and_draft,
    title,
)

pytest_plugins = ["tests.studio_server"]
pytestmark = [pytest.mark.studio, pytest.mark.postgres]


@pytest.fixture(scope="session")
def local_studio(postgres_studio):
    """Every imported test above runs against the PostgreSQL-backed server."""
    return postgres_studio


def _folders(local_studio) -> tuple[local.StudioPaths, postgres.DatabasePaths]:
    paths = local.StudioPaths(local_studio.root)
    return paths, postgres.DatabasePaths.under(paths.folder)


def test_the_cluster_is_private_and_listens_on_loopback_only(local_studio):
    paths, database = _folders(local_studio)
    assert stat.S_IMODE(database.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.cluster.stat().st_mode) == 0o700
    stored = json.loads(database.config.read_text(encoding="utf-8"))
    assert stored["local"] is True and stored["host"] == "127.0.0.1" and len(stored["password"]) >= 32
    assert stored["password"] not in paths.log.read_text(encoding="utf-8")
    assert stored["password"] not in database.log.read_text(encoding="utf-8")
    assert not list(database.cluster.glob(".s.PGSQL.*")), "no unix socket"
    conf = (database.cluster / "postgresql.conf").read_text(encoding="utf-8")
    assert "listen_addresses = '127.0.0.1'" in conf and "unix_socket_directories = ''" in conf
    hba = [line for line in (database.cluster / "pg_hba.conf").read_text().splitlines() if not line.startswith("#")]
    assert hba == ["host label_studio label_studio 127.0.0.1/32 scram-sha-256"]
    pid, port = postgres.running(paths.folder)
    assert postgres.describe(paths.folder) == (
        f"the project's own PostgreSQL in .studio/postgres (127.0.0.1:{port}, database label_studio, pid {pid})"
    )
    with pytest.raises(OSError):
        socket.create_connection((_other_address(), port), timeout=2).close()


def test_studio_up_names_the_database_and_keeps_it(local_studio, monkeypatch):
    paths, database = _folders(local_studio)
    monkeypatch.chdir(local_studio.root)
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "ANNOTATE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    again = runner.invoke(app, ["studio", "up", "--port", str(local_studio.port)])
    assert again.exit_code == 0, again.output
    pid, port = postgres.running(paths.folder)
    where = f"127.0.0.1:{port}, database label_studio, pid {pid}"
    assert f"already running at {local_studio.url}" in again.output
    assert f"Database: the project's own PostgreSQL in .studio/postgres ({where})" in again.output
    refused = runner.invoke(app, ["studio", "up", "--port", str(local_studio.port), "--database", "sqlite"])
    assert refused.exit_code == 1
    assert refused.output == (
        f"Error: {database.config}: this project's Label Studio keeps its data in the project's own PostgreSQL "
        "in .studio/postgres; drop --database sqlite, or move .studio/ away to start on another database\n"
    )


def _other_address() -> str:
    """An address of this machine that is not loopback (the cluster must not answer there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the route picks the address
            address = probe.getsockname()[0]
        except OSError:
            pytest.skip("this machine has no address other than loopback")
    if address.startswith("127."):
        pytest.skip("this machine has no address other than loopback")
    return address


def test_only_label_studio_s_role_logs_in(local_studio):
    psycopg = pytest.importorskip("psycopg")
    paths, database = _folders(local_studio)
    stored = json.loads(database.config.read_text(encoding="utf-8"))
    _, port = postgres.running(paths.folder)
    where = {"host": "127.0.0.1", "port": port, "connect_timeout": 5}
    with psycopg.connect(dbname="label_studio", user="label_studio", password=stored["password"], **where) as db:
        assert db.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone() == (
            False,
            False,
        )
        assert db.execute("SELECT count(*) FROM project").fetchone()[0] >= 0
    for user, name in (("postgres", "postgres"), ("root", "label_studio"), ("label_studio", "postgres")):
        with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
            psycopg.connect(dbname=name, user=user, password=stored["password"], **where)


def test_database_url_points_another_project_at_the_same_database(local_studio, tmp_path, project_root):
    """A second project folder, given the first one's database by URL and its admin's credentials, serves
    the same projects; ``studio down`` there stops its Label Studio and leaves the database alone."""
    paths, database = _folders(local_studio)
    stored = json.loads(database.config.read_text(encoding="utf-8"))
    _, port = postgres.running(paths.folder)
    url = f"postgresql://label_studio:{stored['password']}@127.0.0.1:{port}/label_studio"
    other = local.StudioPaths(tmp_path)
    other.folder.mkdir(mode=0o700)
    shutil.copy2(paths.credentials, other.credentials)
    shared = "Shared through the database"
    labels = load_schema(project_root / "guidelines" / "labels.toml")
    push(local_studio.connect(), [Article("shared", "Hamas said so.")], title=shared, schema=labels)
    info = local.up(tmp_path, port=local.free_port(), timeout=300, database_url=url)
    try:
        assert not info.first_start
        assert Studio(info.url, local_studio.token).project(shared).title == shared
        assert postgres.describe(other.folder) == (
            f"PostgreSQL database label_studio on 127.0.0.1:{port}, user label_studio"
        )
        assert stored["password"] not in other.log.read_text(encoding="utf-8")
    finally:
        assert local.down(tmp_path) == info.pid
    assert postgres.running(paths.folder) is not None, "another project's down left the cluster running"
