"""A real Label Studio for the tests: one per session, on a free port, with a temporary data folder.

Load it with ``pytest_plugins = ["tests.studio_server"]`` (or from tests/conftest.py). It is started
through ``annotate.studio.local.up`` — the same code as ``annotate studio up`` — so the admin account and
the preset API token are made the same way. Without ``label-studio`` installed the tests that need
it are skipped, unless ``ANNOTATE_REQUIRE_STUDIO=1`` (CI) turns that into a failure.

``postgres_studio`` is a second one on PostgreSQL (``studio up --database postgresql``: the
project's own cluster), started once per session by the tests that ask for it; without
PostgreSQL's server programs those tests are skipped or, under ``ANNOTATE_REQUIRE_STUDIO=1``, fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotate.errors import StudioServerError
from annotate.studio import local, postgres
from tests.conftest import processes_of_group


@dataclass
class LocalStudio:
    """The running test server: where it is, its token, and how to kill and restart it."""

    root: Path
    port: int
    url: str
    pid: int
    token: str

    def connect(self):
        from annotate.studio.client import Studio

        return Studio(self.url, self.token)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, no chance to finish a request."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def restart(self) -> None:
        """Start again on the same data folder and port (about 4 s on an existing data folder)."""
        info = local.up(self.root, port=self.port, timeout=240)
        self.pid = info.pid


def _require(check) -> None:
    """Skip when ``check`` finds a part missing, or fail under ``ANNOTATE_REQUIRE_STUDIO=1`` (CI)."""
    try:
        check()
    except StudioServerError as exc:
        if os.environ.get("ANNOTATE_REQUIRE_STUDIO") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _serve(root: Path, **database: str):
    _require(local.require_label_studio)
    port = local.free_port()
    info = local.up(root, port=port, timeout=300, **database)
    token = local.read_credentials(local.StudioPaths(root).credentials).token
    studio = LocalStudio(root, port, info.url, info.pid, token)
    yield studio
    assert local.down(root) == studio.pid, "studio down did not stop the server the tests started"
    leftover = sorted(processes_of_group(studio.pid))
    assert not leftover, f"studio down left processes of the server's group running: {leftover}"


@pytest.fixture(scope="session")
def local_studio(tmp_path_factory) -> LocalStudio:
    yield from _serve(tmp_path_factory.mktemp("studio-project"))


@pytest.fixture(scope="session")
def postgres_studio(tmp_path_factory) -> LocalStudio:
    """The same server on PostgreSQL; ``studio down`` stops the cluster too."""
    _require(postgres.postgres_binaries)
    root = tmp_path_factory.mktemp("studio-postgres")
    yield from _serve(root, database=postgres.POSTGRESQL)
    assert postgres.running(local.StudioPaths(root).folder) is None, "the cluster outlived studio down"
