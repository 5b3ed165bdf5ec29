"""`annotate push --predictions-from`: spans an apply run wrote become predictions on a real Label Studio."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from annotate.apply import apply
from annotate.cli import app
from annotate.labels import load_schema
from annotate.records import Span

pytest_plugins = ["tests.studio_server"]
pytestmark = pytest.mark.studio


def test_push_predictions_from_an_apply_output(local_studio, monkeypatch, tmp_path, project_root, ruler_model_dir):
    title = f"Apply {uuid.uuid4().hex[:10]}"
    schema_path = project_root / "guidelines" / "labels.toml"
    seeds = tmp_path / "articles"
    seeds.mkdir()
    texts = {"emoji": "Talks 😀: Hamas and Israel.", "rtl": "خليل الحية said Hamas", "none": "Nobody here."}
    (seeds / "a.jsonl").write_text(
        "".join(json.dumps({"id": key, "text": text}, ensure_ascii=False) + "\n" for key, text in texts.items()),
        encoding="utf-8",
    )
    out = tmp_path / "labeled"
    report = apply(ruler_model_dir, [seeds], out, schema=load_schema(schema_path), workers=1)
    monkeypatch.chdir(local_studio.root)
    (local_studio.root / "pyproject.toml").write_text(
        f'[tool.annotate]\nschema = "{schema_path}"\nproject = "{title}"\n', encoding="utf-8"
    )
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    (seeds / "b.jsonl").write_text(json.dumps({"id": "late", "text": "Hamas"}) + "\n", encoding="utf-8")
    missing = runner.invoke(app, ["push", str(seeds), "--predictions-from", str(out)])
    assert missing.exit_code == 1
    assert missing.output.strip() == (f"Error: {out}: 1 article(s) not in this apply output (late); run apply on them")
    (seeds / "b.jsonl").unlink()
    pushed = runner.invoke(app, ["push", str(seeds), "--predictions-from", str(out)])
    assert pushed.exit_code == 0, pushed.output
    assert f"3 with predictions from {report.model_version}" in pushed.output
    connection = local_studio.connect()
    index = connection.task_index(connection.project(title))
    shown = {}
    for doc_id, [(task_id, _)] in index.items():
        (prediction,) = connection.predictions(task_id)
        assert prediction["model_version"] == report.model_version
        shown[doc_id] = sorted(
            Span.from_dict({**r["value"], "label": r["value"]["labels"][0]}) for r in prediction["result"]
        )
    assert shown == {
        "emoji": [Span(9, 14, "ACTOR", "Hamas"), Span(19, 25, "ACTOR", "Israel")],
        "rtl": [Span(16, 21, "ACTOR", "Hamas")],
        "none": [],
    }
