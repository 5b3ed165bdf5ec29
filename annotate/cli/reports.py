"""What ML engineers look at: the learning curve, the HTML report, and errors reviewed in Label Studio."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotate.cli._util import (
    GoldOption,
    ProjectOption,
    SeedOption,
    TrainEngineOption,
    WorkersOption,
    app,
    dim,
    project_schema,
    project_settings,
    refresh_index,
    resolved_workers,
)


def _sizes(value: Optional[str]) -> Optional[list[int]]:
    if not value:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated whole numbers such as 1,2,3,4, not {value!r}") from None


@app.command("curve")
def curve_cli(
    sizes: Annotated[
        Optional[str],
        typer.Option(
            "--sizes", help="Training sizes in articles, e.g. 1,2,3,4 (default 1 … n−1; 8 log-spaced when more)."
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Random article subsets per size (all subsets when fewer exist).")
    ] = 3,  # annotate.curve.DEFAULT_REPEATS (not imported here: it loads spaCy)
    seed: SeedOption = 0,
    steps: Annotated[
        Optional[int], typer.Option("--steps", help="Training steps per model (default: the config's max_steps).")
    ] = None,
    gold: GoldOption = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="spaCy config (default configs/spancat.cfg).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for curve.json (default: reports).")] = None,
    workers: WorkersOption = None,
    engine: TrainEngineOption = "local",
) -> None:
    """Learning curve by article: train on random subsets of each size, score on the other articles."""
    from annotate.curve import CURVE_SCHEMAS, check_curve_targets, learning_curve, write_curve
    from annotate.experiment import checked_gold

    settings = project_settings()
    schema = project_schema()
    folder = out or settings.reports
    check_curve_targets(folder)  # before the gold is read and the models trained, not after
    docs = checked_gold(gold or settings.gold, schema, settings.lang)
    overrides = {"training.max_steps": steps} if steps is not None else None
    curve = learning_curve(
        docs,
        config_path=config or settings.train_config,
        labels=schema.names,
        sizes=_sizes(sizes),
        repeats=repeats,
        seed=seed,
        lang=settings.lang,
        overrides=overrides,
        progress=dim,
        workers=resolved_workers(workers),
        engine=engine,
    )
    files = write_curve(folder, curve)
    summary = curve.summary()
    for schema_name in CURVE_SCHEMAS:
        micro = {size: summary[size][schema_name]["micro"] for size in curve.sizes}
        cells = ", ".join(f"{size}: {f1['mean']:.3f} ±{f1['std']:.3f}" for size, f1 in micro.items())
        typer.echo(f"{schema_name} micro F1 by training articles (mean ± sd over repeats): {cells}")
    for schema_name in CURVE_SCHEMAS:
        step = curve.last_step(schema_name)
        if step is not None:
            typer.echo(step.reading(schema_name))
    typer.echo(f"took {curve.source['seconds']:.0f} s; wrote {files['curve']} and {files['plot']}")
    refresh_index(folder, docs, settings, "the curve")


@app.command("report")
def report_cli(
    metrics_dir: Annotated[Optional[Path], typer.Argument(help="Folder with metrics.json (default: reports).")] = None,
    gold: GoldOption = None,
    project: Annotated[
        Optional[str],
        typer.Option("--project", help="Label Studio project whose tasks the errors link to (asks the server once)."),
    ] = None,
) -> None:
    """Write index.html: provenance, scores with intervals, confusions, curve, error browser; one file, offline."""
    from annotate.acceptance import acceptance_files
    from annotate.corpus import read_gold
    from annotate.htmlreport import write_html_report

    settings = project_settings()
    folder = metrics_dir or settings.reports
    links = None
    if project:
        from annotate.studio import client
        from annotate.studio.review import task_links

        links = task_links(client.connect(root=settings.root), project)
    docs = read_gold(gold or settings.gold)
    accepted = acceptance_files(settings.pulled)
    page = write_html_report(
        folder, docs, lang=settings.lang, links=links, project=project or "", acceptance_files=accepted
    )
    typer.echo(f"Wrote {page}" + (f" (errors link to {len(links)} task(s) of {project!r})" if links else ""))


@app.command("review-errors")
def review_errors_cli(
    model_or_predictions: Annotated[
        Path, typer.Argument(help="A saved pipeline folder, or predictions JSONL in gold format.")
    ],
    project: ProjectOption = None,
    gold: GoldOption = None,
) -> None:
    """A Label Studio project with the gold as each article's annotation and the model's spans as its prediction.

    Safe to re-run (articles once; predictions replaced when they change). Fix the gold there, then
    `annotate pull --project TITLE` brings the corrections back.
    """
    from annotate.corpus import read_gold
    from annotate.errors import InputError
    from annotate.review import predictions_for_review, review_pairs
    from annotate.studio import client
    from annotate.studio.review import send_errors_for_review

    settings = project_settings()
    schema = project_schema()
    if not model_or_predictions.exists():
        raise InputError(f"{model_or_predictions}: no such model folder or predictions file")
    docs = read_gold(gold or settings.gold)
    predicted, version = predictions_for_review(model_or_predictions, docs, schema)
    title = project or f"{settings.project} errors"
    connection = client.connect(root=settings.root)
    pairs = review_pairs(docs, predicted)
    report = send_errors_for_review(connection, title=title, schema=schema, pairs=pairs, version=version)
    if report.created_project:
        typer.echo(f"Created project {title!r}")
    typer.echo(
        f"{report.imported} article(s) imported with the gold as annotation, {report.already_present} already there"
    )
    typer.echo(
        f"Predictions of {version}: {report.predictions_created} attached, {report.predictions_unchanged} unchanged, "
        f"{report.predictions_removed} stale removed"
    )
    typer.echo(f"Review at {report.url}; then: annotate pull --project {title!r}")
