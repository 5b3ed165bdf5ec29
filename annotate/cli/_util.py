"""What every command module shares: the typer app and its groups, settings, schema, options, output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from annotate.errors import AnnotateError, redact_urls


class _OneLineErrors(TyperGroup):
    """Turns any AnnotateError raised below into ``Error: <message>`` and exit code 1.

    One rule for every error that carries ``problems`` (a refused gold, a refused pull, ...): each
    problem on a line of its own (file or task, article, span, reason), then the ``Error:`` line.
    Every such line is shown with the ``user:password@`` of any URL in it as ``***@``.
    """

    def parse_args(self, ctx, args):
        ctx.meta["annotate.arguments"] = list(args)  # for the safety net's line: which file, which option
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AnnotateError as exc:
            for problem in getattr(exc, "problems", None) or ():
                say(str(problem), err=True)
            say(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
        except (OSError, RecursionError, UnicodeError) as exc:
            # A safety net only: readers and writers translate these where they know the file and line.
            say(f"Error: {unexpected(exc, ctx.meta.get('annotate.arguments', []))}", err=True)
            raise typer.Exit(1) from None


def say(line: str, *, err: bool = False) -> None:
    """A plain line out: any URL's ``user:password@`` hidden, a lone surrogate shown escaped, never a traceback."""
    shown = redact_urls(line).encode("utf-8", "backslashreplace").decode("utf-8")
    typer.echo(shown, err=err)


def unexpected(exc: BaseException, arguments: Sequence[str] = ()) -> str:
    """One line for an error no reader translated: the reason, and the file it concerns, if known, else the
    command as given (so the line names the file or the option that led to it)."""
    from annotate.targets import os_reason

    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {os_reason(exc)}"
    if isinstance(exc, OSError):
        reason = os_reason(exc)
    elif isinstance(exc, RecursionError):
        reason = "input nested too deeply"
    else:
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    command = " ".join(["annotate", *arguments])
    if len(command) > 200:
        command = command[:199] + "…"
    return f"{reason} (while running `{command}`)" if arguments else reason


app = typer.Typer(
    cls=_OneLineErrors,
    help="Annotate news articles in Label Studio, keep a validated gold set, train and evaluate spaCy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

gold_app = typer.Typer(help="Check and describe the gold set.", no_args_is_help=True)

schema_app = typer.Typer(help="The label schema and what is generated from it.", no_args_is_help=True)

studio_app = typer.Typer(help="The local Label Studio server (data in .studio/, git-ignored).", no_args_is_help=True)

app.add_typer(gold_app, name="gold")
app.add_typer(schema_app, name="schema")
app.add_typer(studio_app, name="studio")

# Text from a file, a server or an argument (an id, a title, a path) is never read as terminal markup: both
# consoles print strings as they are (``[/]`` stays ``[/]``, ``:smile:`` stays text, numbers keep their colour).
# Our own styling goes through ``style=`` or a ``rich.text.Text``, never through markup in a string.
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)


def dim(message: str) -> None:
    """A progress line, dimmed, printed as it is (see the consoles above)."""
    console.print(message, style="dim")


def project_settings():
    """The project's settings from pyproject.toml ([tool.annotate]), found from the working directory."""
    from annotate.settings import load_settings

    return load_settings()


def project_schema(path: Optional[Path] = None):
    """The label schema: the given file, else the project's."""
    from annotate.labels import load_schema

    return load_schema(path or project_settings().schema)


ProjectOption = Annotated[
    Optional[str], typer.Option("--project", help="Label Studio project title (default: settings).")
]


GoldOption = Annotated[Optional[Path], typer.Option("--gold", help="Gold JSONL (default: the project's gold).")]


ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace an existing target this command did not write (see docs/safety.md).")
]


SeedOption = Annotated[int, typer.Option("--seed", help="Random seed: same seed, same model and intervals.")]


WorkersOption = Annotated[
    Optional[int],
    typer.Option("--workers", min=1, help="Trainings run at once: processes, or Ray tasks (default: the cores here)."),
]


TrainEngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local (worker processes here) or ray (Ray tasks at RAY_ADDRESS, else a local Ray; the scale extra).",
    ),
]


def resolved_workers(workers: Optional[int]) -> int:
    """--workers as given, else the cores this process may use."""
    from annotate.engine import default_workers

    return workers or default_workers()


def option_conflict(message: str) -> typer.BadParameter:
    """Options that do not go together, or one that needs another: a usage error (exit code 2), as click's own.

    Every command raises what this returns for such a check, so they all read alike: the command's
    usage, then the message, before anything is read or written.
    """
    return typer.BadParameter(message)


def echo_repairs(repairs) -> None:
    """Spans whose UTF-16 offsets were read as code points are reported, never repaired silently."""
    for repair in repairs:
        typer.echo(f"Repaired: {repair}", err=True)


def seed_origins(settings) -> dict[str, str]:
    """Article id → its seed file, relative to the project (what a pulled document's ``source`` names first)."""
    seeds = settings.seeds
    if not seeds.is_dir():
        return {}
    try:
        folder = seeds.resolve().relative_to(settings.root.resolve()).as_posix()
    except ValueError:  # seeds outside the project: its folder name, never an absolute path with a home folder
        folder = seeds.name
    return {path.stem: f"{folder}/{path.name}" for path in sorted(seeds.glob("*.txt"))}


def refresh_index(folder: Path, gold, settings, what: str) -> None:
    """Rebuild ``folder``'s index.html after ``what`` was saved there, when the folder holds an evaluation.

    The new file is saved already: a report that cannot be rebuilt is said in yellow, never hides that.
    """
    from annotate.acceptance import acceptance_files
    from annotate.htmlreport import INDEX_FILE, write_html_report

    if not (folder / "metrics.json").is_file():
        return
    try:
        page = write_html_report(folder, gold, lang=settings.lang, acceptance_files=acceptance_files(settings.pulled))
        typer.echo(f"updated {page}")
    except AnnotateError as exc:
        console.print(
            f"{folder / INDEX_FILE} not updated: {exc} ({what} is saved; run `annotate report {folder}`)",
            style="yellow",
        )
