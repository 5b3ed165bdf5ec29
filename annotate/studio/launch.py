"""The process ``annotate studio up`` starts: Label Studio's own start-up, then its app on gunicorn.

``label-studio start`` serves everything from one Python process (Django's development server),
so an annotator who opens a task waits behind whatever that process is busy with, such as a
refresh importing predictions (docs/model-in-the-loop.md). Label Studio's own Docker image serves
the same app from several processes (uWSGI, four). This runs ``label-studio start``'s own code,
which migrates the database, makes the first user and records the port, and where it would start
the development server it serves the app from gunicorn's pre-forked workers instead.

Run as ``python -m annotate.studio.launch --workers N --timeout S start <label-studio start options>``;
:func:`annotate.studio.local.up` builds that command line.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import sys
from typing import Any

LAUNCHER = "annotate.studio.launch"
# Processes serving requests, as Label Studio's own Docker image runs (uWSGI, UWSGI_PROCESSES=4).
DEFAULT_WORKERS = 4
GRACEFUL_STOP_S = 10


def gunicorn_settings(host: str, port: int, workers: int, timeout: int) -> dict[str, Any]:
    """gunicorn's settings for Label Studio: one request per process at a time, as Label Studio's uWSGI runs."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "bind": [address],
        "workers": workers,
        "worker_class": "sync",
        # A sync worker is killed when one request outlasts this: a Data Manager "Retrieve
        # predictions" waits for the backend up to ML_TIMEOUT_PREDICT, so this is set above it.
        "timeout": timeout,
        "graceful_timeout": GRACEFUL_STOP_S,
        # Label Studio's uWSGI takes 64 KiB of request headers (its Data Manager puts filters in
        # the query string); gunicorn's defaults would refuse a line over 4 KiB.
        "limit_request_line": 0,
        "limit_request_field_size": 0,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "control_socket_disable": True,
    }


def serve_with_gunicorn(host: str, port: int | str, *, workers: int, timeout: int) -> None:
    """Serve the Django app ``label-studio start`` has set up; replaces its ``_app_run``."""
    from django.core.wsgi import get_wsgi_application
    from django.db import connections
    from django.urls import Resolver404, resolve
    from gunicorn.app.base import BaseApplication

    application = get_wsgi_application()
    # Resolving a URL imports every view module: here, once, rather than on each worker's first
    # request (~0.2 s each), so no annotator's click pays for it and the workers share it.
    with contextlib.suppress(Resolver404):
        resolve("/health/")
    # Start-up queried the database (migrations, the first user); a connection forked into
    # every worker would be shared by all of them, so each worker opens its own.
    connections.close_all()
    # What start-up allocated is shared with the workers until written to; a garbage collection
    # in a worker would walk (and so copy) all of it, so the collector leaves it alone.
    gc.freeze()

    class LabelStudioServer(BaseApplication):
        def load_config(self) -> None:
            for name, value in gunicorn_settings(host, int(port), workers, timeout).items():
                self.cfg.set(name, value)

        def load(self):
            return application

    LabelStudioServer().run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {LAUNCHER}", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, required=True, help="gunicorn worker processes")
    parser.add_argument("--timeout", type=int, required=True, help="seconds one request may take")
    parser.add_argument("start", nargs=argparse.REMAINDER, help="`label-studio start` and its options")
    options = parser.parse_args(argv)
    if options.workers < 1:
        parser.error("--workers must be at least 1")
    if not options.start or options.start[0] != "start":
        parser.error("expected `start` and label-studio's start options")
    # gunicorn retitles its processes when setproctitle is installed; the command line is how
    # `studio down` knows this server as ours, so it stays as started.
    sys.modules["setproctitle"] = None  # type: ignore[assignment]
    from label_studio import server

    server._app_run = functools.partial(serve_with_gunicorn, workers=options.workers, timeout=options.timeout)
    sys.argv = ["label-studio", *options.start]
    server.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
