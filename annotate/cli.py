"""The ``annotate`` command line: a thin typer layer over the library's plain functions.

Each command parses its arguments, calls one function, and renders the result. Library errors
(:class:`AnnotateError`) become one ``Error: …`` line and exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from annotate.errors import AnnotateError


class _OneLineErrors(TyperGroup):
    """Turns any AnnotateError raised below into ``Error: <message>`` and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AnnotateError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_OneLineErrors,
    help="Annotate news articles in Label Studio, keep a validated gold set, train and evaluate spaCy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
gold_app = typer.Typer(help="Check and describe the gold set.", no_args_is_help=True)
schema_app = typer.Typer(help="The label schema and what is generated from it.", no_args_is_help=True)
app.add_typer(gold_app, name="gold")
app.add_typer(schema_app, name="schema")

console = Console(highlight=False)


def _settings():
    from annotate.settings import load_settings

    return load_settings()


def _schema(path: Optional[Path] = None):
    from annotate.labels import load_schema

    return load_schema(path or _settings().schema)


GoldPath = Annotated[Optional[Path], typer.Argument(help="Gold JSONL file or folder (default: the project's gold).")]


@gold_app.command("check")
def gold_check_cli(path: GoldPath = None) -> None:
    """Validate gold: offsets, span text, labels, whitespace, duplicates, hashes, token boundaries."""
    from annotate.convert import blank_pipeline
    from annotate.gold import check_gold

    settings = _settings()
    path = path or settings.gold
    problems = check_gold(path, _schema(), blank_pipeline(settings.lang))
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
    from annotate.corpus import read_gold
    from annotate.gold import gold_stats

    settings = _settings()
    schema = _schema()
    stats = gold_stats(read_gold(path or settings.gold), schema, blank_pipeline(settings.lang))
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
) -> None:
    """Print the Label Studio labeling config generated from the schema."""
    from annotate.corpus import atomic_write_text
    from annotate.labels import label_studio_config

    config = label_studio_config(_schema())
    if out is None:
        typer.echo(config, nl=False)
    else:
        atomic_write_text(out, config)
        typer.echo(f"Wrote {out}")


@schema_app.command("show")
def schema_show_cli() -> None:
    """List the labels with their definitions and hotkeys."""
    table = Table("label", "hotkey", "definition", title="Label schema")
    for label in _schema().labels:
        table.add_row(f"[{label.colour}]{label.name}[/]", label.hotkey, label.definition)
    console.print(table)


# --- Label Studio: studio up|down|status, push, pull (annotate/server.py, annotate/studio.py) ---

studio_app = typer.Typer(help="The local Label Studio server (data in .studio/, git-ignored).", no_args_is_help=True)
app.add_typer(studio_app, name="studio")

ProjectOption = Annotated[
    Optional[str], typer.Option("--project", help="Label Studio project title (default: settings).")
]


@studio_app.command("up")
def studio_up_cli(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; a busy port is an error.")] = 8080,
) -> None:
    """Start a local Label Studio on 127.0.0.1 (admin account and API token made on first start)."""
    from annotate import server

    root = _settings().root
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

    pid = server.down(_settings().root)
    typer.echo(f"Stopped Label Studio (pid {pid})" if pid else "No local Label Studio was running")


@studio_app.command("status")
def studio_status_cli() -> None:
    """Whether Label Studio answers (LABEL_STUDIO_URL or the local one), its version, and whether the key works."""
    import os

    from annotate import server, studio

    root = _settings().root
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

    settings = _settings()
    schema = _schema()
    articles = read_articles(sources or [settings.seeds])
    title = project or settings.project
    guide = settings.guidelines.read_text(encoding="utf-8") if settings.guidelines.is_file() else ""
    instructions = instructions_html(guide) if guide else ""
    predictor = studio.load_predictor(predictions, schema) if predictions else None
    connection = studio.connect(root=settings.root)
    columns = (TextColumn("Importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
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

    settings = _settings()
    title = project or settings.project
    gold_path = gold or settings.gold
    slug = studio.project_slug(title)
    try:
        report = studio.pull(
            studio.connect(root=settings.root),
            title=title,
            schema=_schema(),
            gold_path=gold_path,
            pulled_path=pulled or gold_path.parent / "pulled" / f"{slug}.jsonl",
            snapshots=snapshots or settings.root / "snapshots",
            policy=policy,
            allow_removed=allow_removed,
        )
    except PullError as exc:
        _echo_span_problems(exc)
        raise
    _echo_repairs(report.repairs)
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


# --- agreement and adjudication (annotate/agreement.py, annotate/adjudicate.py) -----------------

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
    from annotate.corpus import read_articles, read_pulled

    return _checked_texts(read_pulled(pulled), read_articles(articles or [_settings().seeds]), str(pulled))


def _annotations_from(pulled: Optional[Path], project: Optional[str], articles: Optional[list[Path]]):
    """Annotations with their checked texts and the schema: from a pulled file, or from a Label Studio project."""
    from annotate import studio
    from annotate.errors import AgreementError, PullError

    if project is None:
        return _pulled_with_texts(pulled, articles)
    if articles:
        raise AgreementError("--articles goes with a PULLED_FILE; with --project the texts come from Label Studio")
    settings = _settings()
    try:
        fetched = studio.fetch_annotations(studio.connect(root=settings.root), title=project, schema=_schema())
    except PullError as exc:
        _echo_span_problems(exc)
        raise
    _echo_repairs(fetched.repairs)
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

    schema = _schema()
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
) -> None:
    """Inter-annotator agreement: span P/R/F1 (strict, partial), Cohen's kappa per pair, Krippendorff's alpha."""
    from rich.markup import escape

    from annotate.agreement import agreement
    from annotate.convert import blank_pipeline
    from annotate.corpus import atomic_write_text
    from annotate.errors import AgreementError

    _one_source(pulled, project)
    annotations, texts, schema = _annotations_from(pulled, project, articles)
    report = agreement(annotations, texts, schema.names, blank_pipeline(_settings().lang))
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
        bool, typer.Option("--replace", help="Overwrite gold even if it holds articles this adjudication lacks.")
    ] = False,
    review: Annotated[
        bool,
        typer.Option(
            "--review", help="Send the conflicts to the --project as predictions, for a reviewer's ground truth."
        ),
    ] = False,
) -> None:
    """Merge annotations into gold: ground truth wins, else spans K annotators marked identically; list conflicts."""
    from annotate.adjudicate import adjudicate, review_items
    from annotate.corpus import atomic_write_text, read_gold, write_gold
    from annotate.errors import AgreementError

    if review and project is None:
        raise AgreementError("--review needs --project NAME: the Label Studio project to send the conflicts to")
    if not (review and pulled is not None):
        _one_source(pulled, project)
    annotations, texts, _ = _annotations_from(pulled, project if pulled is None else None, articles)
    result = adjudicate(annotations, texts, min_agree)
    out = out or _settings().gold
    if out.exists() and not replace:
        kept = {doc.id for doc in result.gold}
        lost = sorted(doc.id for doc in read_gold(out) if doc.id not in kept)
        if lost:
            raise AgreementError(
                f"{out}: holds {len(lost)} article(s) this adjudication does not ({', '.join(lost[:5])}"
                f"{', …' if len(lost) > 5 else ''}); write elsewhere with --out, or pass --replace"
            )
    sent = None
    if review:
        from annotate import studio

        sent = studio.send_review(
            studio.connect(root=_settings().root),
            title=project,
            items=review_items(result),
            texts=texts,
            model_version=studio.review_version(min_agree),
        )
    if conflicts_out is not None:
        lines = "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in result.conflicts)
        atomic_write_text(conflicts_out, lines)
    write_gold(out, result.gold)
    spans = sum(len(doc.spans) for doc in result.gold)
    typer.echo(
        f"Wrote {out}: {len(result.gold)} article(s), {spans} span(s); "
        f"{len(result.from_ground_truth)} from ground truth, min-agree {result.min_agree} for the rest"
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


# --- publish: the gold as a Hugging Face dataset (issue 5) ---------------------------------------


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
            help="Date for the card, YYYY-MM-DD (default: SOURCE_DATE_EPOCH, else the gold's git commit date)."
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
) -> None:
    """Write the gold as a Hugging Face dataset: spans and tokens views as parquet, plus a dataset card."""
    from annotate.convert import blank_pipeline
    from annotate.publish import publish, push_to_hub

    settings = _settings()
    if agreement is None and (settings.reports / "agreement.json").is_file():
        agreement = settings.reports / "agreement.json"
    published = publish(
        out_dir,
        gold or settings.gold,
        _schema(),
        blank_pipeline(settings.lang),
        split_seed=split_seed,
        include_text=not no_text,
        guidelines_path=settings.guidelines,
        agreement_path=agreement,
        date=date,
        license=license,
        pretty_name=settings.project,
        language=settings.lang,
    )
    table = Table("split", "articles", "spans", title=f"Published {out_dir}")
    for split, doc_ids in published.split_plan.splits.items():
        table.add_row(split, str(len(doc_ids)), str(sum(published.span_counts[split].values())))
    console.print(table)
    typer.echo(f"{len(published.files)} files; gold sha256 {published.gold_sha256}; date {published.date}")
    if push_to_hub_repo:
        url = push_to_hub(out_dir, push_to_hub_repo, private=private)
        typer.echo(f"Pushed to {url}")


# --- train, cross-validate, evaluate, run (issue 4) ---------------------------------------------


def _config_path(config: Optional[Path]) -> Path:
    return config or _settings().root / "configs" / "spancat.cfg"


def _patterns_path(patterns: Optional[Path]) -> Path:
    return patterns or _settings().root / "guidelines" / "patterns.jsonl"


def _progress(message: str) -> None:
    console.print(f"[dim]{message}[/]")


def _score_tables(evaluations) -> list[Table]:
    """One table per schema (strict, partial): P, R, F1 and F1's 95% bootstrap interval per system and label."""
    from rich import box

    tables = []
    for schema in ("strict", "partial"):
        table = Table("system", "label", "support", "pred", "P", "R", "F1", "F1 95% CI", title=schema, box=box.SIMPLE)
        for system, result in evaluations.items():
            for label, score in result.scores[schema].items():
                low, high = score.f1_ci
                interval = "" if low != low else f"{low:.2f}–{high:.2f}"
                table.add_row(
                    system,
                    label,
                    str(score.support),
                    str(score.predicted),
                    f"{score.precision:.2f}",
                    f"{score.recall:.2f}",
                    f"{score.f1:.2f}",
                    interval,
                    style="bold" if label in ("micro", "macro") else None,
                )
            table.add_section()
        tables.append(table)
    return tables


def _print_outcome(outcome, title: str) -> None:
    console.print(title, style="bold")
    for table in _score_tables(outcome.evaluations):
        console.print(table)
    for kind, path in outcome.files.items():
        console.print(f"{kind}: {path}")


ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="spaCy config (default configs/spancat.cfg).")]
PatternsOption = Annotated[
    Optional[Path], typer.Option("--patterns", help="Rule patterns JSONL (default guidelines/patterns.jsonl).")
]
GoldOption = Annotated[Optional[Path], typer.Option("--gold", help="Gold JSONL (default: the project's gold).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed: same seed, same model and intervals.")]
FoldsOption = Annotated[
    Optional[int], typer.Option("--folds", help="K folds by article (default: leave one article out).")
]
BootstrapOption = Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% intervals.")]


@app.command("convert")
def convert_cli(
    out: Annotated[Path, typer.Argument(help="DocBin file to write (e.g. corpus/train.spacy).")],
    gold: GoldOption = None,
    strict: Annotated[bool, typer.Option("--strict", help="A span off token boundaries is an error.")] = False,
) -> None:
    """Convert gold to a spaCy DocBin (spans in doc.spans["sc"]) and list every span that had to move."""
    from annotate.convert import blank_pipeline, docbin_bytes, to_spacy_docs
    from annotate.corpus import atomic_write_bytes, read_gold

    settings = _settings()
    docs, audit = to_spacy_docs(blank_pipeline(settings.lang), read_gold(gold or settings.gold), strict=strict)
    for entry in audit:
        typer.echo(str(entry), err=True)
    atomic_write_bytes(out, docbin_bytes(docs))
    typer.echo(f"Wrote {out}: {len(docs)} articles, {sum(len(d.spans['sc']) for d in docs)} spans, {len(audit)} moved")


@app.command("train")
def train_cli(
    gold: GoldOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Pipeline folder (default models/spancat).")] = None,
    seed: SeedOption = 0,
    config: ConfigOption = None,
) -> None:
    """Train the span pipeline on all gold; save it with annotate_meta.json (hashes, versions, scores)."""
    from annotate.experiment import checked_gold
    from annotate.train import train

    settings = _settings()
    schema = _schema()
    docs = checked_gold(gold or settings.gold, schema, settings.lang)
    output = out or settings.models / "spancat"
    with console.status(f"training on {len(docs)} articles"):
        result = train(
            docs,
            output,
            config_path=_config_path(config),
            labels=schema.names,
            schema_sha256=schema.sha256,
            seed=seed,
            lang=settings.lang,
        )
    micro = result.meta["scores_on_training_data"]["strict"]["micro"]
    typer.echo(f"Saved {output} in {result.meta['train_seconds']} s (model {result.meta['model_sha256'][:12]})")
    typer.echo(f"strict F1 on its own training data (a fit check, not held out): {micro['f1']:.3f}")


@app.command("cv")
def cv_cli(
    folds: FoldsOption = None,
    gold: GoldOption = None,
    seed: SeedOption = 0,
    config: ConfigOption = None,
    patterns: PatternsOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default reports/cv).")] = None,
    bootstrap: BootstrapOption = 1000,
) -> None:
    """Cross-validate rules, model and both by article; write pooled predictions JSONL and reports."""
    _cross_validate(gold, out or _settings().reports / "cv", folds, seed, config, patterns, bootstrap)


def _cross_validate(gold, out, folds, seed, config, patterns, bootstrap) -> None:
    """What `cv` and `run` share: check the gold, cross-validate the three systems, print the table."""
    from annotate.experiment import checked_gold, cross_validation_report

    settings = _settings()
    schema = _schema()
    docs = checked_gold(gold or settings.gold, schema, settings.lang)
    console.print(f"{gold or settings.gold}: OK ({len(docs)} articles, {sum(len(d.spans) for d in docs)} spans)")
    outcome = cross_validation_report(
        docs,
        out,
        schema=schema,
        config_path=_config_path(config),
        patterns_path=_patterns_path(patterns),
        folds=folds,
        seed=seed,
        lang=settings.lang,
        bootstrap=bootstrap,
        progress=_progress,
    )
    _print_outcome(outcome, f"Cross-validated scores ({len(outcome.source['folds'])} folds by article)")


@app.command("evaluate")
def evaluate_cli(
    model_or_predictions: Annotated[
        Path, typer.Argument(help="A saved pipeline folder, or predictions JSONL in gold format.")
    ],
    gold: GoldOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json to stdout instead of tables.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default reports/evaluate).")] = None,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
) -> None:
    """Score a model or predictions against gold: strict/exact/partial/type, 95% CIs, confusions, errors."""
    from annotate.corpus import read_gold
    from annotate.errors import InputError
    from annotate.experiment import evaluate_target

    settings = _settings()
    if not model_or_predictions.exists():
        raise InputError(f"{model_or_predictions}: no such model folder or predictions file")
    outcome = evaluate_target(
        model_or_predictions,
        read_gold(gold or settings.gold),
        out or settings.reports / "evaluate",
        schema=_schema(),
        bootstrap=bootstrap,
        seed=seed,
    )
    if as_json:
        typer.echo(outcome.files["metrics"].read_text(encoding="utf-8"), nl=False)
        return
    _print_outcome(outcome, f"Scores of {model_or_predictions}")


@app.command("run")
def run_cli(
    folds: FoldsOption = None,
    seed: SeedOption = 0,
    bootstrap: BootstrapOption = 1000,
) -> None:
    """The main job: check gold, cross-validate rules/model/both, print the table, write reports/."""
    import time

    began = time.perf_counter()
    _cross_validate(None, _settings().reports, folds, seed, None, None, bootstrap)
    console.print(f"annotate run took {time.perf_counter() - began:.0f} s")


def _echo_span_problems(refused) -> None:
    """A refused pull names every bad span (task, annotation, annotator, reason), one line each."""
    for problem in refused.problems:
        typer.echo(str(problem), err=True)


def _echo_repairs(repairs) -> None:
    """Spans whose UTF-16 offsets were read as code points are reported, never repaired silently."""
    for repair in repairs:
        typer.echo(f"Repaired: {repair}", err=True)


def main() -> None:
    app()
