"""Labeling in Label Studio: the local server, push, pull."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from annotate.cli._util import (
    ProjectOption,
    app,
    console,
    echo_repairs,
    echo_span_problems,
    err_console,
    project_schema,
    project_settings,
    studio_app,
)


@studio_app.command("up")
def studio_up_cli(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; a busy port is an error.")] = 8080,
) -> None:
    """Start a local Label Studio on 127.0.0.1 (admin account and API token made on first start)."""
    from annotate import server

    root = project_settings().root
    with console.status("Starting Label Studio (the first start takes about a minute)…"):
        info = server.up(root, port=port)
    credentials = server.read_credentials(server.StudioPaths(root).credentials)
    state = "already running" if info.already_running else "started"
    typer.echo(f"Label Studio {state} at {info.url} (pid {info.pid}, data in {info.data})")
    typer.echo(f"Log in as {credentials.email} with password {credentials.password}")
    typer.echo(f"API token kept in {server.StudioPaths(root).credentials} (mode 0600)")
    typer.echo("Next: annotate push   (then label in the browser, then: annotate pull)")


@studio_app.command("down")
def studio_down_cli() -> None:
    """Stop the Label Studio that `annotate studio up` started here (and nothing else)."""
    from annotate import server

    pid = server.down(project_settings().root)
    typer.echo(f"Stopped Label Studio (pid {pid})" if pid else "No local Label Studio was running")


@studio_app.command("status")
def studio_status_cli() -> None:
    """Whether Label Studio answers (LABEL_STUDIO_URL or the local one), its version, and whether the key works."""
    import os

    from annotate import server, studio

    root = project_settings().root
    url = os.environ.get(studio.URL_ENV) or server.local_url(root)
    if not url:
        typer.echo(f"No local Label Studio running and {studio.URL_ENV} is not set (start one: annotate studio up)")
        raise typer.Exit(1)
    found = server.status(url, root)
    if not found.answering:
        typer.echo(f"{url}: not answering")
        raise typer.Exit(1)
    local = f", local pid {found.local_pid}" if found.local_pid else ""
    typer.echo(f"{url}: answering, Label Studio {found.version or '(version not reported)'}{local}")
    user = studio.connect(url, root=root).whoami()
    typer.echo(f"API key accepted (user {user})")


@app.command("push")
def push_cli(
    sources: Annotated[Optional[list[Path]], typer.Argument(help="Article files or folders (default: seeds).")] = None,
    project: ProjectOption = None,
    predictions: Annotated[
        Optional[Path], typer.Option("--predictions", help="Saved spaCy model whose spans become predictions.")
    ] = None,
    predictions_from: Annotated[
        Optional[Path],
        typer.Option("--predictions-from", help="An `annotate apply` output whose spans become predictions."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Update the config even if it drops labels annotations use.")] = False,
    annotators_per_task: Annotated[
        Optional[int],
        typer.Option(
            "--annotators-per-task",
            metavar="N",
            help="Annotations that finish a task (Label Studio's maximum_annotations); N > 1 to measure agreement.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Tasks per import request.")] = 5000,
) -> None:
    """Put articles into a Label Studio project, each exactly once (safe to re-run after a crash)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from annotate import studio
    from annotate.corpus import read_articles
    from annotate.labels import instructions_html

    settings = project_settings()
    schema = project_schema()
    articles = read_articles(sources or [settings.seeds])
    title = project or settings.project
    guide = settings.guidelines.read_text(encoding="utf-8") if settings.guidelines.is_file() else ""
    instructions = instructions_html(guide) if guide else ""
    if predictions and predictions_from:
        raise typer.BadParameter("give --predictions or --predictions-from, not both")
    predictor = studio.load_predictor(predictions, schema) if predictions else None
    if predictions_from:
        from annotate.apply import predictions_from as stored_predictions

        predictor = stored_predictions(predictions_from, articles, schema)
    connection = studio.connect(root=settings.root)
    columns = (TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("push", total=None)
        report = studio.push(
            connection,
            articles,
            title=title,
            schema=schema,
            instructions=instructions,
            predictor=predictor,
            force=force,
            annotators_per_task=annotators_per_task,
            batch_size=batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if report.created_project:
        typer.echo(f"Created project {title!r} on {connection.url}")
    if report.config_updated:
        typer.echo(f"Updated the labeling config of {title!r} to the schema")
    if report.instructions_updated:
        typer.echo(f"Updated the instructions of {title!r} from {settings.guidelines.name}")
    if report.annotators_per_task_updated:
        typer.echo(f"Each task of {title!r} now goes to {report.annotators_per_task} annotator(s)")
    typer.echo(f"{report.imported} article(s) imported, {report.already_present} already there")
    if report.with_predictions:
        typer.echo(f"{report.with_predictions} with predictions from {report.model_version}")
    for doc_id in report.duplicated_in_studio:
        typer.echo(f"Warning: {doc_id} is in more than one task of {title!r}", err=True)
    if report.text_changed:
        for doc_id in report.text_changed:
            typer.echo(f"{doc_id}: text differs from the task in {title!r}; not imported again", err=True)
        typer.echo(f"{len(report.text_changed)} article(s) changed since they were pushed", err=True)
        raise typer.Exit(1)


@app.command("pull")
def pull_cli(
    project: ProjectOption = None,
    policy: Annotated[
        str, typer.Option(help="Which annotation becomes gold: ground-truth-then-latest, latest, ground-truth-only.")
    ] = "ground-truth-then-latest",
    gold: Annotated[Optional[Path], typer.Option(help="Gold JSONL to write (default: settings).")] = None,
    pulled: Annotated[Optional[Path], typer.Option(help="Where every annotation is kept as JSONL.")] = None,
    snapshots: Annotated[Optional[Path], typer.Option(help="Folder for the compressed raw exports.")] = None,
    allow_removed: Annotated[
        bool, typer.Option("--allow-removed", help="Write gold even if documents of the previous gold drop out.")
    ] = False,
) -> None:
    """Export annotations, validate every span, keep all annotators' work, write gold atomically."""
    from annotate import studio
    from annotate.errors import PullError

    settings = project_settings()
    title = project or settings.project
    gold_path = gold or settings.gold
    slug = studio.project_slug(title)
    try:
        report = studio.pull(
            studio.connect(root=settings.root),
            title=title,
            schema=project_schema(),
            gold_path=gold_path,
            pulled_path=pulled or gold_path.parent / "pulled" / f"{slug}.jsonl",
            snapshots=snapshots or settings.root / "snapshots",
            policy=policy,
            allow_removed=allow_removed,
        )
    except PullError as exc:
        echo_span_problems(exc)
        raise
    echo_repairs(report.repairs)
    summary = Table("", "count", title=f"Pulled {title!r} ({report.policy})")
    for name, value in (
        ("tasks", report.tasks),
        ("gold documents", report.gold_docs),
        ("tasks without annotations", report.tasks_unannotated),
        ("annotations", report.annotations),
        ("cancelled (not gold)", report.cancelled),
        ("drafts (not gold)", report.drafts),
        ("predictions", report.predictions),
        ("spans repaired from UTF-16", len(report.repairs)),
    ):
        summary.add_row(name, str(value))
    for annotator, count in sorted(report.per_annotator.items()):
        summary.add_row(f"annotations by {annotator}", str(count))
    console.print(summary)
    diff = report.diff
    changes = Table("label", "added", "removed", "changed", "unchanged", title="Spans compared with the previous gold")
    for label in diff.labels:
        counts = (diff.added[label], diff.removed[label], diff.changed[label], diff.unchanged[label])
        changes.add_row(label, *(str(n) for n in counts))
    console.print(changes)
    for name, ids in (
        ("added", diff.docs_added),
        ("removed", diff.docs_removed),
        ("text changed", diff.docs_text_changed),
    ):
        if ids:
            typer.echo(f"Documents {name}: {len(ids)} ({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''})")
    typer.echo(f"Wrote {report.gold_path} (sha256 {report.gold_sha256[:12]}), {report.pulled_path}, {report.snapshot}")
