"""`annotate plan --project`: the lead times a real Label Studio keeps, read back by annotator, turned into hours."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from annotate.cli import app
from annotate.labels import label_studio_config, load_schema
from annotate.studio.leadtime import annotation_lead_times
from tests.test_plan import _fixed_curve

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio

# Seconds per annotation as the labeling view records them; 43,200 is a task left open for 12 hours.
TIMES = [610.0, 580.0, 655.0, 43_200.0, 600.0, 630.0]


@pytest.fixture
def project(local_studio, project_root):
    connection = local_studio.connect()
    title = f"Plan {uuid.uuid4().hex[:10]}"
    created = connection.create_project(
        title, label_studio_config(load_schema(project_root / "guidelines" / "labels.toml")), ""
    )
    connection.set_annotators_per_task(created, 2)
    payloads = [
        {
            "data": {"doc_id": f"a{n}", "text": "Hamas said talks resume."},
            "annotations": [{"result": [], "lead_time": s}],
        }
        for n, s in enumerate(TIMES)
    ]
    payloads.append(
        {"data": {"doc_id": "skip", "text": "Skipped."}, "annotations": [{"result": [], "was_cancelled": True}]}
    )
    connection.import_tasks(created, payloads)
    return connection, title


def test_lead_times_come_back_by_annotator(project):
    connection, title = project
    times = annotation_lead_times(connection, title)
    assert times.annotators_per_task == 2 and times.cancelled == 1
    ((annotator, seconds),) = times.seconds.items()
    assert annotator == connection.whoami() and sorted(seconds) == sorted(TIMES)


def test_plan_command_turns_them_into_hours(project, local_studio, tmp_path, monkeypatch):
    _, title = project
    (tmp_path / "pyproject.toml").write_text("[tool.annotate]\n", encoding="utf-8")
    _fixed_curve(tmp_path / "reports")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_URL", local_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", local_studio.token)
    result = CliRunner().invoke(app, ["plan", "--target", "0.5", "--bootstrap", "20", "--project", title])
    assert result.exit_code == 0, result.output
    pace = (
        "pace: 10.2 min per article and annotator (quartiles 10.0 min–10.5 min), 2 annotator(s) per article; "
        f"from Label Studio project {title!r}: 5 annotation(s) by 1 annotator(s), 1 outlier(s) left out"
    )
    assert pace in result.output
    assert "left out as outliers: 12.0 h" in result.output
    assert "1 cancelled (skipped) annotation(s) not counted" in result.output
