"""Project settings: every default path a command uses, read from ``[tool.annotate]`` or defaulted."""

from __future__ import annotations

from dataclasses import fields

import pytest

from annotate.errors import SettingsError
from annotate.settings import Settings, load_settings

# The paths Settings gained, where the commands put them before (the first six are in the repository's
# pyproject.toml, which shows the defaults; see the test below).
NEW_DEFAULTS = {
    "train_config": "configs/spancat.cfg",
    "patterns": "guidelines/patterns.jsonl",
    "snapshots": "snapshots",
    "pulled": "gold/pulled",
    "trained_model": "models/spancat",
    "live_models": "models/live",
    "cv_reports": "reports/cv",
    "evaluate_reports": "reports/evaluate",
    "agreement_figures": "reports/agreement.json",
}
PATHS = sorted({f.name for f in fields(Settings)} - {"root", "lang", "project"})
INSIDE = {  # paths that sit in another setting's folder unless set themselves
    "pulled": "gold",
    "trained_model": "models",
    "live_models": "models",
    "cv_reports": "reports",
    "evaluate_reports": "reports",
    "agreement_figures": "reports",
}


def _project(tmp_path, lines: str = ""):
    (tmp_path / "pyproject.toml").write_text(f"[tool.annotate]\n{lines}", encoding="utf-8")
    return load_settings(tmp_path)


def test_the_new_paths_default_to_where_the_commands_put_them(tmp_path):
    settings = _project(tmp_path)
    assert {name: getattr(settings, name) for name in NEW_DEFAULTS} == {
        name: tmp_path.resolve() / default for name, default in NEW_DEFAULTS.items()
    }


def test_the_repository_pyproject_shows_every_default(tmp_path, settings, project_root):
    defaults = _project(tmp_path)
    assert {name: getattr(defaults, name).relative_to(tmp_path.resolve()) for name in PATHS} == {
        name: getattr(settings, name).relative_to(project_root) for name in PATHS
    }


@pytest.mark.parametrize("name", PATHS)
def test_each_path_is_read_from_pyproject_relative_to_it(tmp_path, name):
    (tmp_path / "sub").mkdir()
    settings = _project(tmp_path, f'{name} = "elsewhere/{name}"\n')
    assert load_settings(tmp_path / "sub") == settings, "found from a subfolder too"
    assert getattr(settings, name) == tmp_path.resolve() / "elsewhere" / name
    others = {other: getattr(settings, other) for other in PATHS if name not in (other, INSIDE.get(other))}
    assert others == {other: getattr(_project(tmp_path), other) for other in others}


def test_nested_defaults_follow_their_folder_unless_set(tmp_path):
    settings = _project(tmp_path, 'gold = "data/gold.jsonl"\nmodels = "m"\nreports = "out"\n')
    root = tmp_path.resolve()
    assert settings.pulled == root / "data" / "pulled"
    assert (settings.trained_model, settings.live_models) == (root / "m" / "spancat", root / "m" / "live")
    assert (settings.cv_reports, settings.evaluate_reports) == (root / "out" / "cv", root / "out" / "evaluate")
    assert settings.agreement_figures == root / "out" / "agreement.json"
    settings = _project(tmp_path, 'models = "m"\nlive_models = "served"\n')
    assert (settings.trained_model, settings.live_models) == (root / "m" / "spancat", root / "served")


def test_a_new_path_key_must_be_text_and_a_typo_is_named(tmp_path):
    with pytest.raises(SettingsError, match=r"\[tool.annotate\] snapshots must be non-empty text"):
        _project(tmp_path, "snapshots = 3\n")
    with pytest.raises(SettingsError, match=r"unknown \[tool.annotate\] keys: train_cfg"):
        _project(tmp_path, 'train_cfg = "x.cfg"\n')
