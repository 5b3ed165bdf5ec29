"""Project settings: ``[tool.annotate]`` in the project's ``pyproject.toml``, with defaults.

Paths are resolved against the folder holding that ``pyproject.toml``, so commands work from
any subfolder of the project.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

from annotate.errors import SettingsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Settings:
    """Every path a command uses when not told otherwise, and the project's language and Label Studio title."""

    root: Path
    schema: Path
    guidelines: Path
    seeds: Path
    gold: Path
    models: Path
    reports: Path
    train_config: Path  # spaCy config for train, cv, run, curve and the backend's retraining
    patterns: Path  # rule patterns (JSONL) for cv and run
    snapshots: Path  # pull's compressed raw exports
    pulled: Path  # pull's record of every annotation, one JSONL per project
    trained_model: Path  # where `annotate train` saves its pipeline
    live_models: Path  # where the ML backend saves retrained models
    cv_reports: Path  # `annotate cv` reports
    evaluate_reports: Path  # `annotate evaluate` reports
    agreement_figures: Path  # agreement JSON that `annotate publish` puts into the dataset card
    lang: str = "en"
    project: str = "News spans"


_PATH_DEFAULTS = {
    "schema": "guidelines/labels.toml",
    "guidelines": "guidelines/GUIDELINES.md",
    "seeds": "seeds",
    "gold": "gold/gold.jsonl",
    "models": "models",
    "reports": "reports",
    "train_config": "configs/spancat.cfg",
    "patterns": "guidelines/patterns.jsonl",
    "snapshots": "snapshots",
}

# Paths that live inside another setting's folder unless set themselves: moving `models` moves `live_models`.
_NESTED_DEFAULTS: dict[str, Callable[[dict[str, Path]], Path]] = {
    "pulled": lambda paths: paths["gold"].parent / "pulled",
    "trained_model": lambda paths: paths["models"] / "spancat",
    "live_models": lambda paths: paths["models"] / "live",
    "cv_reports": lambda paths: paths["reports"] / "cv",
    "evaluate_reports": lambda paths: paths["reports"] / "evaluate",
    "agreement_figures": lambda paths: paths["reports"] / "agreement.json",
}


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` whose pyproject.toml has ``[tool.annotate]``."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        try:
            if candidate.is_file() and "[tool.annotate]" in candidate.read_text(encoding="utf-8", errors="replace"):
                return folder
        except OSError as exc:
            raise SettingsError(f"{candidate}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return start


def load_settings(root: Path | None = None) -> Settings:
    """The settings of the project at or above ``root`` (default: the working directory); unknown keys are refused."""
    root = find_root(root)
    table: dict = {}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("annotate", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{pyproject}: not valid TOML ({exc})") from None
        except RecursionError:
            raise SettingsError(f"{pyproject}: TOML nested too deeply") from None
        except OSError as exc:
            raise SettingsError(f"{pyproject}: cannot read ({exc.strerror or type(exc).__name__})") from None
        if not isinstance(table, dict):
            raise SettingsError(f"{pyproject}: [tool.annotate] must be a table")
    known = {f.name for f in fields(Settings)} - {"root"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SettingsError(f"{pyproject}: unknown [tool.annotate] keys: {', '.join(unknown)}")
    wrong = sorted(name for name, value in table.items() if not isinstance(value, str) or not value.strip())
    if wrong:
        raise SettingsError(f"{pyproject}: [tool.annotate] {', '.join(wrong)} must be non-empty text (in quotes)")
    values = {name: root / table.get(name, default) for name, default in _PATH_DEFAULTS.items()}
    for name, default in _NESTED_DEFAULTS.items():
        values[name] = root / table[name] if name in table else default(values)
    settings = Settings(root=root, **values)
    for name in ("lang", "project"):
        if name in table:
            settings = replace(settings, **{name: table[name]})
    return settings
