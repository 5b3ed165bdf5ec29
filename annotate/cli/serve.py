"""The model in the loop: `serve` (the ML backend) and `studio connect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotate.cli._util import ProjectOption, app, project_schema, project_settings, studio_app


@app.command("serve")
def serve_cli(
    model_dir: Annotated[Path, typer.Argument(help="Saved spaCy pipeline to serve (e.g. models/model-best).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9090,
    train_config: Annotated[
        Optional[Path],
        typer.Option("--train-config", help="spaCy config for retraining (default configs/spancat.cfg)."),
    ] = None,
    models_dir: Annotated[
        Optional[Path], typer.Option("--models-dir", help="Where retrained models go (default: <models>/live).")
    ] = None,
    train_every: Annotated[
        Optional[int],
        typer.Option("--train-every", metavar="N", help="Retrain after every N new or updated annotations."),
    ] = None,
) -> None:
    """Serve a model to Label Studio as its ML backend: predictions, retraining, scores for uncertainty sampling.

    Basic auth: set ANNOTATE_BACKEND_USER and ANNOTATE_BACKEND_PASSWORD (then connect with the same).
    """
    import logging

    try:
        from annotate.backend.app import create_app, listening_socket, run
        from annotate.backend.auth import basic_auth_from_env
    except ImportError as exc:
        typer.echo(f"Error: annotate serve needs the serve extra: pip install -e '.[serve]' ({exc})", err=True)
        raise typer.Exit(1) from None
    from annotate.backend.state import BackendOptions
    from annotate.errors import InputError

    if train_every is not None and train_every < 1:
        raise InputError(f"--train-every must be at least 1, not {train_every}")
    basic_auth = basic_auth_from_env()  # before the model loads: a half-set pair never serves
    settings = project_settings()
    options = BackendOptions(
        root=settings.root,
        schema_path=settings.schema,
        config_path=(train_config or settings.train_config).resolve(),
        models_dir=(models_dir or settings.live_models).resolve(),
        lang=settings.lang,
        train_every=train_every,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    listener = listening_socket(host, port)  # before the model loads too: a bad --host/--port is one line at once
    application = create_app(model_dir, project_schema(), options, basic_auth=basic_auth)
    version = application.state.backend.predictor.model_version
    typer.echo(f"Serving {version} at http://{host}:{port} (connect it: annotate studio connect --backend-url ...)")
    run(application, listener)


@studio_app.command("connect")
def studio_connect_cli(
    backend_url: Annotated[str, typer.Option("--backend-url", help="Where `annotate serve` listens.")],
    project: ProjectOption = None,
    sampling: Annotated[
        Optional[str], typer.Option(help="Task order for annotators: uncertainty, sequential or random.")
    ] = None,
) -> None:
    """Connect the ML backend to the project (idempotent) and have it pre-annotate every unlabeled task."""
    from annotate.backend.auth import basic_auth_from_env
    from annotate.errors import redact_url
    from annotate.studio import client
    from annotate.studio.link import checked_backend_url, connect_backend

    basic_auth = basic_auth_from_env()  # a half-set pair is refused before Label Studio is asked anything
    url = checked_backend_url(backend_url)  # before Label Studio is asked anything
    settings = project_settings()
    title = project or settings.project
    link = connect_backend(
        client.connect(root=settings.root),
        title=title,
        backend_url=url,
        sampling=sampling,
        basic_auth=basic_auth,
    )
    done = "connected" if link.created else "updated" if link.updated else "already connected"
    typer.echo(f"ML backend {redact_url(link.url)} {done} to {title!r} (serving {link.model_version})")
    if link.sampling:
        typer.echo(f"Sampling: {link.sampling}")
    typer.echo(f"{link.refreshed} unlabeled task(s) predicted with {link.model_version}")
