"""Training and evaluation: convert, train, cv, evaluate, and the main job `run`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from annotate.acceptance import acceptance_files
from annotate.cli._util import (
    ForceOption,
    GoldOption,
    SeedOption,
    TrainEngineOption,
    WorkersOption,
    app,
    console,
    dim,
    err_console,
    option_conflict,
    project_schema,
    project_settings,
    resolved_workers,
)


@contextmanager
def _training_progress() -> Iterator:
    """A callback for the library's TrainingProgress events: a bar (fold, step, loss) on a terminal, else plain lines.

    The bar is drawn on stderr and disappears when done, as push's does; without a terminal
    (a log file, CI) each new stage is one dim line and steps are not printed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not err_console.is_terminal:
        yield lambda event: dim(event.message) if event.message else None
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("step"),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=None, loss="—")

        def show(event) -> None:
            if event.message:
                what = f"fold {event.fold}/{event.folds}" if event.folds else event.message
                bar.reset(task, description=what, total=None, loss="—")
                bar.console.print(event.message, style="dim")
                return
            loss = "—" if event.loss is None else f"{event.loss:.2f}"
            bar.update(task, completed=event.step, total=event.max_steps or None, loss=loss)

        yield show


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
    for system, knows in (outcome.source.get("systems_knowledge") or {}).items():
        console.print(f"{system}: {knows}")
    for choice in outcome.source.get("choices") or []:
        thresholds = ", ".join(f"{label} {value:g}" for label, value in choice["thresholds"].items())
        console.print(
            f"held out {' '.join(choice['held_out'])}: chose {Path(choice['config']).name}, thresholds {thresholds}"
        )
    for kind, path in outcome.files.items():
        console.print(f"{kind}: {path}")


ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="spaCy config (default configs/spancat.cfg).")]


PatternsOption = Annotated[
    Optional[Path], typer.Option("--patterns", help="Rule patterns JSONL (default guidelines/patterns.jsonl).")
]


FoldsOption = Annotated[
    Optional[int], typer.Option("--folds", help="K folds by article (default: leave one article out).")
]


BootstrapOption = Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the 95% intervals.")]


NestedOption = Annotated[
    bool,
    typer.Option(
        "--nested",
        help="Honest protocol: each fold chooses per-label thresholds (and the config, among --candidate-config) "
        "by an inner leave-one-article-out on its own training articles. About 3x the trainings per config "
        "(15 instead of 5 with five articles).",
    ),
]


CandidateConfigOption = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--candidate-config",
        help="Another spaCy config for --nested to choose among, besides the project's (repeatable; each adds "
        "about 3x the trainings of a plain cv).",
    ),
]


def _candidates(config: Path, nested: bool, candidate_config: Optional[list[Path]]) -> list[Path]:
    """The configs a nested run chooses among: the project's (or --config) first, then each --candidate-config."""
    from annotate.errors import InputError

    if candidate_config and not nested:
        raise option_conflict(
            "--candidate-config is for --nested (the configs a nested run chooses among); add --nested"
        )
    for path in [config, *(candidate_config or [])] if nested else []:
        if not path.is_file():
            raise InputError(f"{path}: no such spaCy config")
    return list(dict.fromkeys([config, *(candidate_config or [])]))


@app.command("convert")
def convert_cli(
    out: Annotated[Path, typer.Argument(help="DocBin file to write (e.g. corpus/train.spacy).")],
    gold: GoldOption = None,
    strict: Annotated[bool, typer.Option("--strict", help="A span off token boundaries is an error.")] = False,
    force: ForceOption = False,
) -> None:
    """Convert gold to a spaCy DocBin (spans in doc.spans["sc"]) and list every span that had to move."""
    from annotate.docbin import convert

    settings = project_settings()
    done = convert(gold or settings.gold, out, schema=project_schema(), lang=settings.lang, strict=strict, force=force)
    for entry in done.audit:
        typer.echo(str(entry), err=True)
    typer.echo(f"Wrote {done.out}: {done.articles} articles, {done.spans} spans, {len(done.audit)} moved")


@app.command("train")
def train_cli(
    gold: GoldOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Pipeline folder (default models/spancat).")] = None,
    seed: SeedOption = 0,
    config: ConfigOption = None,
    force: ForceOption = False,
) -> None:
    """Train the span pipeline on all gold; save it with annotate_meta.json (hashes, versions, scores)."""
    from annotate.experiment import checked_gold
    from annotate.train import check_model_folder, train

    settings = project_settings()
    schema = project_schema()
    output = out or settings.trained_model
    check_model_folder(output, force=force)
    docs = checked_gold(gold or settings.gold, schema, settings.lang)
    with _training_progress() as progress:
        result = train(
            docs,
            output,
            config_path=config or settings.train_config,
            labels=schema.names,
            schema_sha256=schema.sha256,
            seed=seed,
            lang=settings.lang,
            force=force,
            progress=progress,
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
    nested: NestedOption = False,
    candidate_config: CandidateConfigOption = None,
    workers: WorkersOption = None,
    engine: TrainEngineOption = "local",
) -> None:
    """Cross-validate rules, memorized, model and both by article; write pooled predictions JSONL and reports."""
    out = out or project_settings().cv_reports
    _cross_validate(gold, out, folds, seed, config, patterns, bootstrap, nested, candidate_config, workers, engine)


def _cross_validate(
    gold,
    out,
    folds,
    seed,
    config,
    patterns,
    bootstrap,
    nested=False,
    candidate_config=None,
    workers=None,
    engine="local",
) -> None:
    """What `cv` and `run` share: check the gold, cross-validate the four systems, print the table."""
    from annotate.experiment import checked_gold, cross_validation_report

    settings = project_settings()
    schema = project_schema()
    config = config or settings.train_config
    candidates = _candidates(config, nested, candidate_config)
    docs = checked_gold(gold or settings.gold, schema, settings.lang)
    console.print(f"{gold or settings.gold}: OK ({len(docs)} articles, {sum(len(d.spans) for d in docs)} spans)")
    with _training_progress() as progress:
        outcome = cross_validation_report(
            docs,
            out,
            schema=schema,
            config_path=config,
            patterns_path=patterns or settings.patterns,
            folds=folds,
            seed=seed,
            lang=settings.lang,
            bootstrap=bootstrap,
            progress=progress,
            nested=nested,
            configs=candidates,
            acceptance_files=acceptance_files(settings.pulled),
            workers=resolved_workers(workers),
            engine=engine,
        )
    how = ", nested" if nested else ""
    _print_outcome(outcome, f"Cross-validated scores ({len(outcome.source['folds'])} folds by article{how})")


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
    from annotate.errors import InputError
    from annotate.experiment import evaluate_target
    from annotate.gold import validated_gold
    from annotate.targets import path_kind

    settings = project_settings()
    schema = project_schema()
    if path_kind(model_or_predictions) == "missing":
        raise InputError(f"{model_or_predictions}: no such model folder or predictions file")
    outcome = evaluate_target(
        model_or_predictions,
        validated_gold(gold or settings.gold, schema),
        out or settings.evaluate_reports,
        schema=schema,
        bootstrap=bootstrap,
        seed=seed,
        acceptance_files=acceptance_files(settings.pulled),
    )
    seen = outcome.source.get("trained_on_gold", 0)
    if seen:
        typer.echo(
            f"Warning: {model_or_predictions} was trained on {seen} of these {outcome.source['articles']} gold "
            "article(s) (annotate_meta.json): the scores are a fit check, not held-out; `annotate cv` gives "
            "held-out figures",
            err=True,
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
    nested: NestedOption = False,
    candidate_config: CandidateConfigOption = None,
    workers: WorkersOption = None,
    engine: TrainEngineOption = "local",
) -> None:
    """The main job: check gold, cross-validate rules/memorized/model/both, print the table, write reports/."""
    import time

    began = time.perf_counter()
    reports = project_settings().reports
    _cross_validate(None, reports, folds, seed, None, None, bootstrap, nested, candidate_config, workers, engine)
    console.print(f"annotate run took {time.perf_counter() - began:.0f} s")
