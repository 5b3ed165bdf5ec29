"""Labeling in Label Studio: the local server, push, pull."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from annotate.cli._util import (
    ProjectOption,
    app,
    console,
    echo_repairs,
    err_console,
    option_conflict,
    project_schema,
    project_settings,
    seed_origins,
    studio_app,
)
from annotate.studio.launch import DEFAULT_WORKERS


@studio_app.command("up")
def studio_up_cli(
    port: Annotated[int, typer.Option(help="Port to listen on; a busy port is an error.")] = 8080,
    host: Annotated[
        str,
        typer.Option(
            metavar="ADDRESS",
            help="Address to listen on (default 127.0.0.1, this machine only); another lets annotators on "
            "other machines in, see docs/studio.md.",
        ),
    ] = "127.0.0.1",
    database: Annotated[
        Optional[str],
        typer.Option(
            metavar="sqlite|postgresql",
            help="Where a new project's server keeps its data: sqlite (default), or postgresql, a PostgreSQL of the "
            "project's own in .studio/ as a team's server runs (Debian's postgresql package); later starts keep it.",
        ),
    ] = None,
    database_url: Annotated[
        Optional[str],
        typer.Option(
            metavar="URL",
            envvar="ANNOTATE_DATABASE_URL",
            help="postgresql://USER:PASSWORD@HOST:PORT/DATABASE: keep the data in a PostgreSQL run elsewhere "
            "(stored in .studio/database.json, readable by you only).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving requests, each one at a time, so a long request (an import, an export) does not "
            "hold up an annotator's. Label Studio's Docker image runs 4, as here: ~0.8 GB once busy (docs/studio.md).",
        ),
    ] = DEFAULT_WORKERS,
) -> None:
    """Start a local Label Studio on 127.0.0.1 (admin account and API token made on first start)."""
    from annotate.studio import local, postgres

    root = project_settings().root
    if host not in local.LOOPBACK:
        typer.echo(
            f"Warning: listening on {host}: anyone who can reach this machine on port {port} sees the login page, "
            "over plain HTTP; use it only on a network you trust (docs/studio.md: a team server)",
            err=True,
        )
    with console.status("Starting Label Studio (the first start takes about a minute)…"):
        info = local.up(root, port=port, host=host, database=database, database_url=database_url, workers=workers)
    state = "already running" if info.already_running else "started"
    processes = f", {info.workers} worker processes" if info.workers else ""
    typer.echo(f"Label Studio {state} at {info.url} (pid {info.pid}{processes}, data in {info.data})")
    on_postgres = postgres.describe(local.StudioPaths(root).folder)
    if on_postgres:
        typer.echo(f"Database: {on_postgres}")
    _echo_login(root, info.url)
    typer.echo(f"API token kept in {local.StudioPaths(root).credentials} (mode 0600)")
    typer.echo(_next_steps())


def _echo_login(root: Path, url: str) -> None:
    from annotate.studio import local

    credentials = local.read_credentials(local.StudioPaths(root).credentials)
    typer.echo(f"Log in at {url} as {credentials.email} with password {credentials.password}")


def _next_steps() -> str:
    """What to run next; when ``annotate`` is not on PATH (after ``make studio``), how to get it there first."""
    import shutil
    import sys

    steps = "annotate push   (then label in the browser, then: annotate pull)"
    beside = Path(sys.executable).with_name("annotate")
    on_path = shutil.which("annotate")
    if not beside.is_file() or (on_path and Path(on_path).resolve() == beside.resolve()):
        return f"Next: {steps}"
    activate = beside.with_name("activate")
    with contextlib.suppress(ValueError):
        activate = activate.relative_to(Path.cwd())
    return f"Next: source {activate}   (puts annotate on PATH), then: {steps}"


@studio_app.command("down")
def studio_down_cli() -> None:
    """Stop the Label Studio that `annotate studio up` started here (and nothing else)."""
    from annotate.studio import local, postgres

    root = project_settings().root
    cluster = postgres.running(local.StudioPaths(root).folder)
    pid = local.down(root)
    typer.echo(f"Stopped Label Studio (pid {pid})" if pid else "No local Label Studio was running")
    if cluster:
        typer.echo(f"Stopped its PostgreSQL (pid {cluster[0]})")


@studio_app.command("status")
def studio_status_cli() -> None:
    """Whether Label Studio answers (LABEL_STUDIO_URL or the local one), its version, and whether the key works."""
    import os

    from annotate.errors import redact_url
    from annotate.studio import client, local

    root = project_settings().root
    url = os.environ.get(client.URL_ENV) or local.local_url(root)
    if not url:
        typer.echo(f"No local Label Studio running and {client.URL_ENV} is not set (start one: annotate studio up)")
        raise typer.Exit(1)
    found = local.status(client.checked_url(url), root)
    shown = redact_url(url)
    if not found.answering:
        typer.echo(f"{shown}: not answering")
        raise typer.Exit(1)
    local_pid = f", local pid {found.local_pid}" if found.local_pid else ""
    typer.echo(f"{shown}: answering, Label Studio {found.version or '(version not reported)'}{local_pid}")
    user = client.connect(url, root=root).whoami()
    typer.echo(f"API key accepted (user {user})")
    if found.local_pid and local.same_server(url, local.local_url(root) or ""):
        _echo_login(root, url)


@studio_app.command("projects")
def studio_projects_cli() -> None:
    """The projects on the server (LABEL_STUDIO_URL or the local one) with task, annotated and prediction counts."""
    from annotate.studio import client

    connection = client.connect(root=project_settings().root)
    found = connection.projects()
    if not found:
        typer.echo(f"No projects on {connection.url} yet (annotate push creates one)")
        return
    table = Table("id", "title", "tasks", "annotated", "predictions", title=f"Projects on {connection.url}")
    for summary in sorted(found, key=lambda s: s.project.id):
        counts = (summary.tasks, summary.annotated, summary.predictions)
        table.add_row(str(summary.project.id), summary.title, *(str(n) for n in counts))
    console.print(table)


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

    from annotate.articles import read_articles
    from annotate.labels import instructions_html
    from annotate.model import load_predictor
    from annotate.studio import client
    from annotate.studio.push import check_push_options, push

    check_push_options(batch_size=batch_size, annotators_per_task=annotators_per_task)
    settings = project_settings()
    schema = project_schema()
    articles = read_articles(sources or [settings.seeds])
    title = project or settings.project
    guide = settings.guidelines.read_text(encoding="utf-8") if settings.guidelines.is_file() else ""
    instructions = instructions_html(guide) if guide else ""
    if predictions and predictions_from:
        raise option_conflict("give --predictions or --predictions-from, not both")
    predictor = load_predictor(predictions, schema) if predictions else None
    if predictions_from:
        from annotate.apply import predictions_from as stored_predictions

        predictor = stored_predictions(predictions_from, articles, schema)
    connection = client.connect(root=settings.root)
    columns = (TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("push", total=None)
        report = push(
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
    if report.predictions_added or report.predictions_updated or report.predictions_unchanged:
        typer.echo(
            f"Predictions from {report.model_version} on tasks already there: {report.predictions_added} added, "
            f"{report.predictions_updated} updated, {report.predictions_unchanged} unchanged"
        )
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
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Gold becomes only what the project holds (default: update the labeled, keep the rest)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change in gold, per label and article; write nothing.")
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="Keep articles submitted with no spans as gold with zero spans (else refused)."
        ),
    ] = False,
) -> None:
    """Export annotations, validate every span, keep all annotators' work, update gold atomically."""
    from annotate.studio import client
    from annotate.studio.pull import project_slug, pull

    settings = project_settings()
    title = project or settings.project
    gold_path = gold or settings.gold
    slug = project_slug(title)
    report = pull(
        client.connect(root=settings.root),
        title=title,
        schema=project_schema(),
        gold_path=gold_path,
        pulled_path=pulled or (gold.parent / "pulled" if gold else settings.pulled) / f"{slug}.jsonl",
        snapshots=snapshots or settings.snapshots,
        policy=policy,
        replace=replace,
        origins=seed_origins(settings),
        dry_run=dry_run,
        allow_empty=allow_empty,
    )
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
        ("submitted with no spans (gold, --allow-empty)", len(report.empty)),
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
    for task, doc_id in report.empty:
        typer.echo(f"Submitted with no spans: task {task} ({doc_id}); kept as gold with zero spans")
    for name, ids in (
        ("added", diff.docs_added),
        ("removed", diff.docs_removed),
        ("text changed", diff.docs_text_changed),
    ):
        if ids:
            typer.echo(f"Documents {name}: {len(ids)} ({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''})")
    if report.kept:
        shown = ", ".join(report.kept[:5]) + (", …" if len(report.kept) > 5 else "")
        verb = "Would keep" if report.dry_run else "Kept"
        typer.echo(
            f"{verb} {len(report.kept)} article(s) of the previous gold that the project has no gold annotation for "
            f"({shown}); `annotate pull --replace` writes only what the project holds"
        )
    if report.dry_run:
        articles = Table("article", "label", "added", "removed", "changed", "unchanged", title="Changes per article")
        for doc_id, change in sorted(report.per_article.items()):
            for label in change.labels:
                counts = (change.added[label], change.removed[label], change.changed[label], change.unchanged[label])
                articles.add_row(doc_id, label, *(str(n) for n in counts))
        console.print(articles)
        typer.echo(f"Dry run: nothing written; {report.gold_path} would hold {report.gold_docs} article(s)")
        return
    typer.echo(f"Wrote {report.gold_path} (sha256 {report.gold_sha256[:12]}), {report.pulled_path}, {report.snapshot}")
    if report.acceptance is not None:
        from annotate.acceptance import acceptance_path
        from annotate.cli._acceptance import print_acceptance

        print_acceptance(report.acceptance.to_dict())
        typer.echo(f"Wrote {acceptance_path(report.pulled_path)}")
