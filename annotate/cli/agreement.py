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


def _pulled_with_texts(pulled: Path, articles: Optional[list[Path]]):
    """Read pulled annotations and the articles they were made on (default: seeds), then check them."""
    from annotate.articles import read_articles
    from annotate.corpus import read_pulled

    return _checked_texts(read_pulled(pulled), read_articles(articles or [project_settings().seeds]), str(pulled))


def _annotations_from(pulled: Optional[Path], project: Optional[str], articles: Optional[list[Path]]):
    """Annotations with their checked texts and the schema: from a pulled file, or from a Label Studio project."""
    from annotate.errors import AgreementError
    from annotate.studio import client
    from annotate.studio.pull import fetch_annotations

    if project is None:
        return _pulled_with_texts(pulled, articles)
    if articles:
        raise AgreementError("--articles goes with a PULLED_FILE; with --project the texts come from Label Studio")
    settings = project_settings()
    fetched = fetch_annotations(client.connect(root=settings.root), title=project, schema=project_schema())
    echo_repairs(fetched.repairs)
    return _checked_texts(list(fetched.annotations), fetched.articles, f"project {project!r}")


def _one_source(pulled: Optional[Path], project: Optional[str]) -> None:
    from annotate.errors import AgreementError

    if (pulled is None) == (project is None):
        raise AgreementError(
            "give either a PULLED_FILE or --project NAME" + (", not both" if pulled is not None else "")
        )


def _checked_texts(annotations, articles, source: str):
    """Annotations, their article texts and the schema; refuses changed or missing articles and bad spans."""
    from annotate.agreement import pulled_texts

    schema = project_schema()
    return annotations, pulled_texts(annotations, articles, schema.names, source), schema


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
    from rich.markup import escape

    from annotate.agreement import agreement
    from annotate.convert import blank_pipeline
    from annotate.corpus import atomic_write_text, json_with_keys
    from annotate.errors import AgreementError
    from annotate.targets import check_file_target

    _one_source(pulled, project)
    if json_out is not None:
        recognise = json_with_keys("schema_version", "krippendorff_alpha")
        check_file_target(json_out, recognise=recognise, what="JSON of agreement figures", force=force)
    annotations, texts, schema = _annotations_from(pulled, project, articles)
    report = agreement(annotations, texts, schema.names, blank_pipeline(project_settings().lang))
    if not report.pairs:
        source = pulled if project is None else f"project {project!r}"
        raise AgreementError(
            f"{source}: no article has two or more annotators ({len(report.doc_annotators)} article(s), "
            f"annotators: {', '.join(report.annotators) or 'none'}); agreement needs articles annotated by several"
        )
    if json_out is not None:
        atomic_write_text(
            json_out, json.dumps(report.to_dict(include_disagreements=False), indent=2, ensure_ascii=False) + "\n"
        )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(f"{report.shared_docs} article(s) with two or more annotators; the first of a pair is the reference")
    for pair in report.pairs:
        title = escape(f"{pair.first} vs {pair.second}: {len(pair.doc_ids)} article(s)")
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
    _show_acceptance(pulled, project, annotations, texts, schema)
    if json_out is not None:
        typer.echo(f"Wrote {json_out}")


def _show_acceptance(pulled, project, annotations, texts, schema) -> None:
    """What annotators did to the predictions: fresh from the project, or as the pull of PULLED_FILE found it."""
    from annotate.cli._acceptance import acceptance_path, print_acceptance, read_acceptance

    if project is not None:
        from annotate.studio import client
        from annotate.studio.pull import prediction_acceptance

        connection = client.connect(root=project_settings().root)
        found = prediction_acceptance(connection, connection.project(project), annotations, texts, schema)
        if found is not None:
            print_acceptance(found.to_dict())
        return
    figures = read_acceptance(acceptance_path(pulled))
    if figures is not None:
        print_acceptance(figures, f" (as pulled, {acceptance_path(pulled).name})")


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
    from annotate.adjudicate import adjudicate, review_items
    from annotate.corpus import encode_text, gold_jsonl, is_gold_file, jsonl_with_keys, read_gold
    from annotate.errors import AgreementError
    from annotate.lsformat import merge_gold, source_origin, with_origins
    from annotate.targets import check_file_target, write_files

    if review and project is None:
        raise AgreementError("--review needs --project NAME: the Label Studio project to send the conflicts to")
    if not (review and pulled is not None):
        _one_source(pulled, project)
    out = out or project_settings().gold
    check_file_target(out, recognise=is_gold_file, what="gold file", force=force)
    if conflicts_out is not None:
        recognise = jsonl_with_keys("doc_id", "span", "marked_by")
        check_file_target(conflicts_out, recognise=recognise, what="conflicts file", force=force)
    annotations, texts, _ = _annotations_from(pulled, project if pulled is None else None, articles)
    if not annotations:
        source = pulled if pulled is not None else f"project {project!r}"
        raise AgreementError(f"{source}: no annotations to adjudicate; nothing written")
    result = adjudicate(annotations, texts, min_agree)
    previous = read_gold(out) if out.exists() else []
    origins = {doc.id: source_origin(doc.source) for doc in previous} | seed_origins(project_settings())
    gold, kept = with_origins(result.gold, origins), []
    if not replace:
        gold, kept = merge_gold(previous, gold)
    sent = None
    if review:
        from annotate.studio import client
        from annotate.studio.review import review_version, send_review

        sent = send_review(
            client.connect(root=project_settings().root),
            title=project,
            items=review_items(result),
            texts=texts,
            model_version=review_version(min_agree),
        )
    writes = [(out, encode_text(gold_jsonl(gold), str(out)))]
    if conflicts_out is not None:
        lines = "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in result.conflicts)
        writes.insert(0, (conflicts_out, encode_text(lines, str(conflicts_out))))
    write_files(writes)
    spans = sum(len(doc.spans) for doc in result.gold)
    typer.echo(
        f"Wrote {out}: {len(result.gold)} article(s) adjudicated, {spans} span(s); "
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
