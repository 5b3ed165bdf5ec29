"""The command line: help everywhere, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import typer
from typer.testing import CliRunner

from annotate.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if getattr(command, "commands", None):
            yield from _commands(command, (*prefix, name))


def test_every_command_has_help_text():
    root = typer.main.get_command(app)
    found = list(_commands(root))
    assert len(found) >= 4
    for path, command in found:
        assert (command.help or "").strip(), f"annotate {' '.join(path)} has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)


def test_python_dash_m_works(project_root):
    result = subprocess.run(
        [sys.executable, "-m", "annotate", "--help"], cwd=project_root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "gold" in result.stdout


def test_gold_check_prints_one_line_per_problem_and_exits_1(tmp_path):
    text = "Hamas said"
    record = {
        "id": "d",
        "text": text,
        "text_sha256": "0" * 64,
        "spans": [{"start": 0, "end": 5, "label": "X", "text": "Hamas"}],
    }
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["gold", "check", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].endswith("d: text_sha256 does not match the text (was the article edited?)")
    assert lines[1].endswith("d: [0:5] X 'Hamas': label not in the schema (ACTOR, DEMAND, FIGURE, ATTRIBUTION)")
    assert lines[2] == f"2 problem(s) in {path}"


def test_unreadable_input_is_one_error_line(tmp_path):
    result = runner.invoke(app, ["gold", "check", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'missing.jsonl'}: no such gold file\n"


def test_gold_stats_json(tmp_path):
    text = "Hamas said 57,000 people died."
    spans = [
        {"start": 0, "end": 5, "label": "ACTOR", "text": "Hamas"},
        {"start": 0, "end": 10, "label": "ATTRIBUTION", "text": "Hamas said"},
        {"start": 11, "end": 24, "label": "FIGURE", "text": "57,000 people"},
    ]
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"id": "d", "text": text, "spans": spans}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["gold", "stats", str(path), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["totals"] == {"ACTOR": 1, "DEMAND": 0, "FIGURE": 1, "ATTRIBUTION": 1}
    assert stats["span_tokens"]["FIGURE"] == {"mean": 2.0, "max": 2}
    assert stats["overlaps"] == {"ACTOR+ATTRIBUTION": 1}


def test_schema_config_matches_the_library(tmp_path):
    out = tmp_path / "config.xml"
    result = runner.invoke(app, ["schema", "config", "--out", str(out)])
    assert result.exit_code == 0
    assert '<Label value="ACTOR"' in out.read_text(encoding="utf-8")


def test_every_error_with_problems_prints_them_all_then_the_error_line(tmp_path):
    text = "Hamas said Israel"
    records = [
        {"id": "d", "text": text, "spans": [{"start": 11, "end": 17, "label": "NOPE", "text": "Israel"}]},
        {"id": "e", "text": text, "spans": [{"start": 0, "end": 4, "label": "ACTOR", "text": "Hama"}]},
    ]
    path = tmp_path / "g.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    result = runner.invoke(app, ["train", "--gold", str(path), "--out", str(tmp_path / "model")])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}:1: d: [11:17] NOPE 'Israel': label not in the schema (ACTOR, DEMAND, FIGURE, ATTRIBUTION)",
        f"{path}:2: e: [0:4] ACTOR 'Hama': edges are not on spaCy token boundaries (expand gives 'Hamas')",
        f"Error: 2 problem(s) in the gold {path}; fix them first",
    ]
    assert not (tmp_path / "model").exists()
