"""Labeling an archive: ``annotate apply`` runs a saved model over many articles into parquet shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotate.cli._util import app, err_console, project_schema


@app.command("apply")
def apply_cli(
    model_dir: Annotated[Path, typer.Argument(help="Saved spaCy pipeline (e.g. models/model-best).")],
    sources: Annotated[list[Path], typer.Argument(help="Folders or files: .txt (id = file stem), .jsonl, .parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: parquet shards and .apply-manifest.json.")],
    engine: Annotated[str, typer.Option(help="local (spaCy processes) or ray (RAY_ADDRESS, else a local Ray).")] = (
        "local"
    ),
    workers: Annotated[
        Optional[int], typer.Option(help="Processes (local) or Ray workers (default: the cores here).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Articles per nlp.pipe batch.")] = 64,
    shard_size: Annotated[int, typer.Option(help="Source records per output shard (the unit of resuming).")] = 10_000,
    force: Annotated[
        bool, typer.Option(help="Start over in a folder written for other sources or another model.")
    ] = False,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Write bad rows to .rejects.jsonl and go on, instead of stopping.")
    ] = False,
) -> None:
    """Label every article with the model into resumable parquet shards (run it again to finish a stopped job)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from annotate.apply import apply

    columns = (
        TextColumn("Labeling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} articles/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("apply", total=None, rate="–")
        first_seen: list[int] = []  # articles already done when this run started

        def progress(done: int, total: int) -> None:
            first_seen[:] = first_seen or [done]
            elapsed = bar.tasks[task].elapsed or 0.0
            rate = f"{(done - first_seen[0]) / elapsed:,.0f}" if elapsed else "–"
            bar.update(task, completed=done, total=total, rate=rate)

        report = apply(
            model_dir,
            sources,
            out,
            schema=project_schema(),
            engine=engine,
            workers=workers,
            batch_size=batch_size,
            shard_size=shard_size,
            force=force,
            skip_bad=skip_bad,
            progress=progress,
        )
    if report.shards_done_before:
        typer.echo(f"{report.shards_done_before} of {report.shards} shard(s) were already done")
    rate = f", {report.words / report.seconds:,.0f} words/s" if report.seconds and report.words else ""
    typer.echo(
        f"{report.articles} article(s), {report.spans} span(s) from {report.model_version} in {report.out_dir}: "
        f"{report.shards_written} shard(s) written by {report.engine} with {report.workers} worker(s) "
        f"in {report.seconds:.1f} s{rate}"
    )
    if report.rejects_path:
        typer.echo(f"{report.rejected} bad row(s) skipped, listed in {report.rejects_path}", err=True)
