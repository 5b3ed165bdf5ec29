"""Agreement between annotators and adjudication into gold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from annotate.cli._util import (
    ForceOption,
    app,
    console,
    echo_repairs,
    option_conflict,
    project_schema,
    project_settings,
    seed_origins,
)

PulledFile = Annotated[
    Optional[Path],
    typer.Argument(
        metavar="PULLED_FILE", help="Pulled annotations (JSONL written by `annotate pull`); or use --project."
    ),
]


FromProject = Annotated[
    Optional[str],
    typer.Option(
        "--project",
        metavar="NAME",
        help="Read every annotation straight from this Label Studio project instead of a PULLED_FILE.",
    ),
]


ArticleSources = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--articles",
        metavar="PATH",
        help="Articles that were annotated: folder or .txt/.jsonl file, repeatable (default: seeds).",
    ),
]


def _annotation_source(pulled: Optional[Path], project: Optional[str], articles: Optional[list[Path]]):
    """Where the annotations come from: a PULLED_FILE with its articles (default: seeds), or a project, not both."""
    from annotate.consensus import ProjectSource, PulledSource

    if (pulled is None) == (project is None):
        raise option_conflict(
            "give either a PULLED_FILE or --project NAME" + (", not both" if pulled is not None else "")
        )
    if pulled is None:
        if articles:
            raise option_conflict("--articles goes with a PULLED_FILE; with --project the texts come from Label Studio")
        return ProjectSource(project)
    return PulledSource(pulled, tuple(articles or [project_settings().seeds]))


def _score(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.3f}"


@app.command("agreement")
def agreement_cli(
    pulled: PulledFile = None,
    project: FromProject = None,
    articles: ArticleSources = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (figures and disagreements) instead of tables.")
    ] = False,
    json_out: Annotated[
        Optional[Path], typer.Option("--json-out", help="Also write the figures as JSON here (for the dataset card).")
    ] = None,
    show: Annotated[int, typer.Option(help="How many disagreements to list (all are in --json).")] = 50,
    force: ForceOption = False,
) -> None:
    """Inter-annotator agreement: span P/R/F1 (strict, partial), Cohen's kappa per pair, Krippendorff's alpha."""
    from annotate.consensus import measure_agreement

    source = _annotation_source(pulled, project, articles)
    settings = project_settings()
    measured = measure_agreement(source, schema=project_schema(), lang=settings.lang, json_out=json_out, force=force)
    echo_repairs(measured.annotations.repairs)
    report = measured.report
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(f"{report.shared_docs} article(s) with two or more annotators; the first of a pair is the reference")
    for pair in report.pairs:
        title = f"{pair.first} vs {pair.second}: {len(pair.doc_ids)} article(s)"
        table = Table(
            "label",
            *(f"{kind}\n{name}" for kind in ("strict", "partial") for name in ["P", "R", "F1"]),
            "token\nkappa",
            title=title,
        )
        rows = [(label, pair.strict[label], pair.partial[label], pair.kappa[label]) for label in report.labels]
        rows.append(("overall", pair.strict_overall, pair.partial_overall, pair.mean_kappa))
        for label, strict, partial, kappa in rows:
            table.add_row(
                label,
                *(_score(v) for v in (strict.precision, strict.recall, strict.f1)),
                *(_score(v) for v in (partial.precision, partial.recall, partial.f1)),
                _score(kappa),
                style="bold" if label == "overall" else None,
            )
        console.print(table)
    alpha = Table("label", "Krippendorff's alpha", title=f"All annotators ({len(report.annotators)}), token level")
    for label in report.labels:
        alpha.add_row(label, _score(report.alpha[label]))
    alpha.add_row("mean", _score(report.mean_alpha), style="bold")
    console.print(alpha)
    typer.echo(
        f"{len(report.disagreements)} disagreement(s); {report.cancelled} cancelled and "
        f"{report.superseded} superseded annotation(s) left out"
    )
    for disagreement in report.disagreements[:show]:
        typer.echo(disagreement.describe())
    if len(report.disagreements) > show:
        typer.echo(f"… and {len(report.disagreements) - show} more (see --json)")
    if measured.acceptance is not None:
        from annotate.cli._acceptance import print_acceptance

        where = measured.acceptance_file
        print_acceptance(measured.acceptance, f" (as pulled, {where.name})" if where is not None else "")
    if json_out is not None:
        typer.echo(f"Wrote {json_out}")


@app.command("adjudicate")
def adjudicate_cli(
    pulled: PulledFile = None,
    project: FromProject = None,
    articles: ArticleSources = None,
    min_agree: Annotated[int, typer.Option(help="Annotators that must mark a span identically for it to be gold.")] = 2,
    out: Annotated[Optional[Path], typer.Option(help="Gold JSONL to write (default: the project's gold).")] = None,
    conflicts_out: Annotated[
        Optional[Path], typer.Option("--conflicts-out", help="Also write the conflicts as JSONL here.")
    ] = None,
    show: Annotated[int, typer.Option(help="How many conflicts to list.")] = 50,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Gold becomes only what was adjudicated (default: update those articles, keep the rest)."
        ),
    ] = False,
    review: Annotated[
        bool,
        typer.Option(
            "--review", help="Send the conflicts to the --project as predictions, for a reviewer's ground truth."
        ),
    ] = False,
    force: ForceOption = False,
) -> None:
    """Merge annotations into gold: ground truth wins, else spans K annotators marked identically; list conflicts."""
    from annotate.consensus import adjudicate_into_gold

    if review and project is None:
        raise option_conflict("--review needs --project NAME: the Label Studio project to send the conflicts to")
    source = _annotation_source(pulled, None if review and pulled is not None else project, articles)
    settings = project_settings()
    done = adjudicate_into_gold(
        source,
        schema=project_schema(),
        gold_path=out or settings.gold,
        min_agree=min_agree,
        conflicts_path=conflicts_out,
        replace=replace,
        review_project=project if review else None,
        origins=seed_origins(settings),
        force=force,
    )
    echo_repairs(done.annotations.repairs)
    result, kept, sent = done.result, done.kept, done.review
    spans = sum(len(doc.spans) for doc in result.gold)
    typer.echo(
        f"Wrote {done.gold_path}: {len(result.gold)} article(s) adjudicated, {spans} span(s); "
        f"{len(result.from_ground_truth)} from ground truth, min-agree {result.min_agree} for the rest"
    )
    if kept:
        typer.echo(
            f"Kept {len(kept)} article(s) of the previous gold that were not adjudicated "
            f"({', '.join(kept[:5])}{', …' if len(kept) > 5 else ''}); --replace writes only the adjudicated ones"
        )
    if result.undecided:
        typer.echo(
            f"Undecided (fewer than {result.min_agree} annotators, no ground truth; not in gold): "
            + ", ".join(result.undecided)
        )
    typer.echo(f"{len(result.conflicts)} conflict(s)" + (f", written to {conflicts_out}" if conflicts_out else ""))
    for conflict in result.conflicts[:show]:
        typer.echo(conflict.describe())
    if len(result.conflicts) > show:
        typer.echo(f"… and {len(result.conflicts) - show} more (see --conflicts-out)")
    if sent is not None:
        typer.echo(
            f"Review set {sent.model_version!r} in {project!r}: {len(sent.tasks)} task(s) with candidates "
            f"({sent.created} prediction(s) added, {sent.unchanged} unchanged, {sent.removed} stale removed); "
            "a reviewer submits a ground-truth annotation on each, then run adjudicate again"
        )
