"""The model in the loop: `serve` (the ML backend), `studio connect` and `studio refresh`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotate.cli._util import ProjectOption, app, err_console, project_schema, project_settings, studio_app


@app.command("serve")
def serve_cli(
    model_dir: Annotated[
        Optional[Path],
        typer.Argument(
            help="Saved spaCy pipeline to serve (e.g. models/model-best); with --models-dir, until one trains there."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9090,
    train_config: Annotated[
        Optional[Path],
        typer.Option("--train-config", help="spaCy config for retraining (default configs/spancat.cfg)."),
    ] = None,
    models_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--models-dir",
            help="Where retrained models go (default: <models>/live); given, the newest model trained there is served.",
        ),
    ] = None,
    refresh_page: Annotated[
        int, typer.Option("--refresh-page", metavar="N", help="Tasks listed and checked at a time by a refresh.")
    ] = 200,
    workers: Annotated[
        Optional[int],
        typer.Option(help="Processes (local) or Ray workers predicting a refresh (default: the cores here)."),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="Where a refresh predicts: local (processes) or ray (RAY_ADDRESS, else a local Ray).")
    ] = "local",
    pin: Annotated[
        bool, typer.Option("--pin", help="Serve MODEL_DIR even when --models-dir holds a newer trained model.")
    ] = False,
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
    from annotate.backend.state import BackendOptions, served_model
    from annotate.engine import check_workers, default_workers
    from annotate.errors import InputError

    if train_every is not None and train_every < 1:
        raise InputError(f"--train-every must be at least 1, not {train_every}")
    basic_auth = basic_auth_from_env()  # before the model loads: a half-set pair never serves
    if refresh_page < 1:
        raise InputError(f"--refresh-page must be at least 1, not {refresh_page}")
    workers = default_workers() if workers is None else workers
    check_workers(workers, engine)
    settings = project_settings()
    options = BackendOptions(
        root=settings.root,
        schema_path=settings.schema,
        config_path=(train_config or settings.train_config).resolve(),
        models_dir=(models_dir or settings.live_models).resolve(),
        lang=settings.lang,
        train_every=train_every,
        refresh_page=refresh_page,
        refresh_workers=workers,
        refresh_engine=engine,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if model_dir is None and models_dir is None:
        raise typer.BadParameter("name a MODEL_DIR to serve, or --models-dir to serve the newest model trained there")
    listener = listening_socket(host, port)  # before the model loads too: a bad --host/--port is one line at once
    served, why = served_model(model_dir, options.models_dir if models_dir is not None else None, pin=pin)
    application = create_app(served, project_schema(), options, basic_auth=basic_auth)
    version = application.state.backend.predictor.model_version
    typer.echo(f"Serving {served} ({why})")
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
    """Connect the ML backend to the project (idempotent); it pre-annotates every unlabeled task, shown as a bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from annotate.backend.auth import basic_auth_from_env
    from annotate.errors import redact_url
    from annotate.studio import client
    from annotate.studio.link import checked_backend_url, connect_backend, wait_for_refresh

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
    columns = (TextColumn("Predicting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("refresh", total=None)
        state = wait_for_refresh(
            link.url,
            basic_auth=basic_auth,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    typer.echo(f"Every unlabeled task holds predictions of {link.model_version} ({state.get('done', 0)} predicted now)")


@studio_app.command("refresh")
def studio_refresh_cli(
    model_dir: Annotated[Path, typer.Argument(help="Saved spaCy pipeline whose predictions the project should show.")],
    project: ProjectOption = None,
    engine: Annotated[str, typer.Option(help="local (processes) or ray (RAY_ADDRESS, else a local Ray).")] = "local",
    workers: Annotated[
        Optional[int], typer.Option(help="Processes (local) or Ray workers (default: the cores here).")
    ] = None,
    page: Annotated[int, typer.Option("--page", metavar="N", help="Tasks listed and checked at a time.")] = 200,
) -> None:
    """Predict every unlabeled task lacking MODEL_DIR's version (in pages, resumable), then show that version."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from annotate.engine import check_workers, default_workers
    from annotate.errors import InputError
    from annotate.model import SavedModel, check_pipeline_folder
    from annotate.studio import client
    from annotate.studio.link import refresh_project

    workers = default_workers() if workers is None else workers
    check_workers(workers, engine)
    if page < 1:
        raise InputError(f"--page must be at least 1, not {page}")
    settings = project_settings()
    check_pipeline_folder(model_dir)
    model = SavedModel(model_dir, project_schema())
    connection = client.connect(root=settings.root)
    target = connection.project(project or settings.project)
    columns = (TextColumn("Predicting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("refresh", total=None)
        report = refresh_project(
            connection,
            target,
            model,
            page_size=page,
            workers=workers,
            engine=engine,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    typer.echo(
        f"{report.predicted} task(s) of {target.title!r} predicted with {report.model_version} "
        f"({report.engine}, {report.workers} worker(s))"
    )
    if report.shown:
        typer.echo(f"The project shows {report.model_version}'s predictions")
