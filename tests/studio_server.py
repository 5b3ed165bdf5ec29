"""A real Label Studio for the tests: one per session, on a free port, with a temporary data folder.

Load it with ``pytest_plugins = ["tests.studio_server"]`` (or from tests/conftest.py). It is started
through ``annotate.studio.local.up`` — the same code as ``annotate studio up`` — so the admin account and
the preset API token are made the same way. Without ``label-studio`` installed the tests that need
it are skipped, unless ``ANNOTATE_REQUIRE_STUDIO=1`` (CI) turns that into a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotate.errors import StudioServerError
from annotate.studio import local


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


@pytest.fixture(scope="session")
def local_studio(tmp_path_factory) -> LocalStudio:
    try:
        local.label_studio_executable()
    except StudioServerError as exc:
        if os.environ.get("ANNOTATE_REQUIRE_STUDIO") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("studio-project")
    port = local.free_port()
    info = local.up(root, port=port, timeout=300)
    token = local.read_credentials(local.StudioPaths(root).credentials).token
    studio = LocalStudio(root, port, info.url, info.pid, token)
    yield studio
    assert local.down(root) == studio.pid, "studio down did not stop the server the tests started"
