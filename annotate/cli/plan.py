"""`annotate plan`: how many more articles of gold, and how many annotator hours, to reach a target F1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from annotate.cli._util import SeedOption, app, project_settings, refresh_index


@app.command("plan")
def plan_cli(
    target: Annotated[float, typer.Option("--target", help="The F1 to reach, e.g. 0.7.")],
    label: Annotated[
        Optional[list[str]], typer.Option("--label", help="A label to answer for (repeatable; default all and micro).")
    ] = None,
    level: Annotated[str, typer.Option("--level", help="Matching: strict or partial.")] = "strict",
    project: Annotated[
        Optional[str],
        typer.Option("--project", help="Label Studio project whose annotations' lead_time gives the hours."),
    ] = None,
    seconds_per_article: Annotated[
        Optional[float],
        typer.Option("--seconds-per-article", help="Annotator seconds per article, when no --project has times."),
    ] = None,
    annotators_per_task: Annotated[
        Optional[int],
        typer.Option("--annotators-per-task", help="Annotators per article (default: the project's setting, else 1)."),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Folder with curve.json; plan.json goes there (default: reports).")
    ] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Resamples of the repeats for the intervals.")] = 1000,
    seed: SeedOption = 0,
) -> None:
    """Fit the learning curve per label; print the articles (and hours) needed to reach --target, or why not."""
    from annotate.errors import PlanError
    from annotate.pace import fixed_pace, pace_from_lead_times
    from annotate.plan import make_plan, read_curve, write_plan

    settings = project_settings()
    folder = out or settings.reports
    if project and seconds_per_article:
        raise PlanError("give --project (times recorded in Label Studio) or --seconds-per-article, not both")
    curve, curve_sha256 = read_curve(folder)
    pace, cancelled = None, 0
    if project:
        from annotate.studio import client
        from annotate.studio.leadtime import annotation_lead_times

        times = annotation_lead_times(client.connect(root=settings.root), project)
        pace = pace_from_lead_times(
            times.seconds,
            annotators_per_task=annotators_per_task or times.annotators_per_task,
            source=f"Label Studio project {project!r}",
        )
        cancelled = times.cancelled
    elif seconds_per_article:
        pace = fixed_pace(seconds_per_article, annotators_per_task=annotators_per_task or 1)
    plan = make_plan(
        curve,
        target=target,
        labels=label,
        level=level,
        pace=pace,
        resamples=bootstrap,
        seed=seed,
        curve_sha256=curve_sha256,
    )
    sizes = ", ".join(map(str, plan.source["sizes"]))
    typer.echo(
        f"To reach {level} F1 {target:g} (curve: sizes {sizes}, {plan.source['runs']} runs, "
        f"gold of {plan.gold_articles} articles; {bootstrap} resamples):"
    )
    for answer in plan.answers:
        typer.echo(f"  {answer.label}: {answer.reading}")
    if pace is None:
        typer.echo("hours: give --project TITLE (lead times recorded by Label Studio) or --seconds-per-article N")
    else:
        typer.echo(pace.reading())
        for annotator in pace.annotators:
            typer.echo(f"  {annotator.reading()}")
    if cancelled:
        typer.echo(f"  {cancelled} cancelled (skipped) annotation(s) not counted")
    files = write_plan(folder, plan)
    typer.echo(f"wrote {files['plan']} and {files['plot']}")
    from annotate.corpus import read_gold

    if (folder / "metrics.json").is_file():
        refresh_index(folder, read_gold(settings.gold), settings, "the plan")
