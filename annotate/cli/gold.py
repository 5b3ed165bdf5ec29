"""The gold set, the label schema, and publishing the gold as a Hugging Face dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from annotate.cli._util import ForceOption, app, console, gold_app, project_schema, project_settings, schema_app

GoldPath = Annotated[Optional[Path], typer.Argument(help="Gold JSONL file or folder (default: the project's gold).")]


@gold_app.command("check")
def gold_check_cli(path: GoldPath = None) -> None:
    """Validate gold: offsets, span text, labels, whitespace, duplicates, hashes, token edges; warn on empty ones."""
    from annotate.convert import blank_pipeline
    from annotate.gold import inspect_gold

    settings = project_settings()
    path = path or settings.gold
    found = inspect_gold(path, project_schema(), blank_pipeline(settings.lang))
    for warning in found.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    problems = found.problems
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {path}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path}: OK")


@gold_app.command("stats")
def gold_stats_cli(
    path: GoldPath = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Spans per label per article, span length in tokens, overlaps per label pair."""
    from annotate.convert import blank_pipeline
    from annotate.gold import gold_stats, validated_gold

    settings = project_settings()
    schema = project_schema()
    stats = gold_stats(validated_gold(path or settings.gold, schema), schema, blank_pipeline(settings.lang))
    if as_json:
        typer.echo(json.dumps(stats.to_dict(), indent=2, ensure_ascii=False))
        return
    counts = Table("article", *schema.names, "total", title="Spans per label")
    for doc_id, per_label in stats.articles.items():
        counts.add_row(doc_id, *(str(per_label[name]) for name in schema.names), str(sum(per_label.values())))
    totals = stats.totals
    counts.add_row("total", *(str(totals[name]) for name in schema.names), str(sum(totals.values())), style="bold")
    console.print(counts)
    lengths = Table("label", "mean tokens", "max tokens", title="Span length")
    for name in schema.names:
        mean, longest = stats.length_summary(name)
        lengths.add_row(name, f"{mean:.1f}", str(longest))
    console.print(lengths)
    overlaps = Table("labels", "overlapping pairs", title="Overlaps")
    for (first, second), count in sorted(stats.overlaps.items()):
        overlaps.add_row(f"{first} + {second}", str(count))
    console.print(overlaps)


@schema_app.command("config")
def schema_config_cli(
    out: Annotated[Optional[Path], typer.Option(help="Write the config to this file instead.")] = None,
    force: ForceOption = False,
) -> None:
    """Print the Label Studio labeling config generated from the schema."""
    from annotate.labels import label_studio_config, write_label_studio_config

    if out is None:
        typer.echo(label_studio_config(project_schema()), nl=False)
        return
    write_label_studio_config(project_schema(), out, force=force)
    typer.echo(f"Wrote {out}")


@schema_app.command("show")
def schema_show_cli() -> None:
    """List the labels with their definitions and hotkeys."""
    table = Table("label", "hotkey", "definition", title="Label schema")
    for label in project_schema().labels:
        table.add_row(Text(label.name, style=label.colour), label.hotkey, label.definition)
    console.print(table)


@app.command("publish")
def publish_cli(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the dataset into (replaced if an earlier publish).")],
    gold: Annotated[
        Optional[Path], typer.Option(help="Gold JSONL file or folder (default: the project's gold).")
    ] = None,
    split_seed: Annotated[int, typer.Option(help="Seed for the document-level splits and folds.")] = 0,
    no_text: Annotated[
        bool, typer.Option("--no-text", help="Publish offsets, labels and text hashes only, no article text.")
    ] = False,
    agreement: Annotated[
        Optional[Path],
        typer.Option(help="JSON of agreement figures for the card (default: reports/agreement.json if present)."),
    ] = None,
    date: Annotated[
        Optional[str],
        typer.Option(
            help="Date for the card, YYYY-MM-DD (default: SOURCE_DATE_EPOCH, else the gold's git commit date, "
            "else the gold file's modification date)."
        ),
    ] = None,
    license: Annotated[
        str, typer.Option(help="Hub licence id for the annotations (the article texts stay their publishers').")
    ] = "other",
    push_to_hub_repo: Annotated[
        Optional[str],
        typer.Option(
            "--push-to-hub", metavar="REPO_ID", help="Then upload to this Hub dataset repo (token from HF_TOKEN)."
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the Hub repo as private.")] = False,
    real_names: Annotated[
        bool,
        typer.Option(
            "--real-names",
            help="Publish annotators as Label Studio names them (e-mails) instead of pseudonyms (annotator-1, …).",
        ),
    ] = False,
) -> None:
    """Write the gold as a Hugging Face dataset: spans and tokens views as parquet, plus a dataset card."""
    from annotate import privacy
    from annotate.convert import blank_pipeline
    from annotate.publish import publish, push_to_hub

    settings = project_settings()
    if agreement is None and settings.agreement_figures.is_file():
        agreement = settings.agreement_figures
    published = publish(
        out_dir,
        gold or settings.gold,
        project_schema(),
        blank_pipeline(settings.lang),
        split_seed=split_seed,
        include_text=not no_text,
        guidelines_path=settings.guidelines,
        agreement_path=agreement,
        date=date,
        license=license,
        pretty_name=settings.project,
        language=settings.lang,
        real_names=real_names,
        pseudonyms_path=privacy.mapping_path(settings.root),
    )
    if real_names:
        typer.echo("Warning: annotators are published under their real names (--real-names)", err=True)
    else:
        typer.echo(f"Annotators published as pseudonyms; who is who stays in {privacy.mapping_path(settings.root)}")
    table = Table("split", "articles", "spans", title=f"Published {out_dir}")
    for split, doc_ids in published.split_plan.splits.items():
        table.add_row(split, str(len(doc_ids)), str(sum(published.span_counts[split].values())))
    console.print(table)
    typer.echo(f"{len(published.files)} files; gold sha256 {published.gold_sha256}; date {published.date}")
    if push_to_hub_repo:
        url = push_to_hub(out_dir, push_to_hub_repo, private=private)
        typer.echo(f"Pushed to {url}")
