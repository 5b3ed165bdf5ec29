# ruff: noqa: F811  (the fixtures imported from tests/test_browser.py are the test's arguments)
"""The model in the loop in a real browser: the annotator sees the backend's spans, corrects them, submits, pulls.

Uses the browser, login and workspace of tests/test_browser.py and a real `annotate serve` process.
"""

from __future__ import annotations

import json

import pytest

from annotate.articles import read_articles
from annotate.model import model_version
from annotate.records import Span
from tests.backend_process import BackendProcess
from tests.test_browser import (  # noqa: F401  (fixtures)
    _browser_and_server_present,
    _highlights,
    _span_of,
    admin,
    annotator,
    browser,
    logged_in,
    workspace,
)

pytest.importorskip("fastapi")
pytest_plugins = ["tests.studio_server"]
pytestmark = [pytest.mark.browser, pytest.mark.studio, pytest.mark.timeout(240, func_only=True)]


def test_the_annotator_sees_the_backends_spans_corrects_one_and_pull_keeps_it(
    workspace,
    annotator,
    settings,
    tmp_path,
    ruler_model_dir,
    local_studio,  # noqa: F811
):
    assert "5 article(s) imported" in workspace.annotate("push")  # no pushed predictions
    project_id, tasks = workspace.tasks()
    article = read_articles([settings.seeds])[0]
    assert workspace.connection.predictions(tasks[article.id]) == []
    env = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token}
    backend = BackendProcess(ruler_model_dir, tmp_path / "backend.log", env).start()
    try:
        output = workspace.annotate("studio", "connect", "--backend-url", backend.url)
        version = model_version(ruler_model_dir)
        assert f"connected to {workspace.title!r} (serving {version})" in output
        (prediction,) = workspace.connection.predictions(tasks[article.id])
        predicted = sorted(
            Span(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["value"]["text"])
            for r in prediction["result"]
        )
        assert prediction["model_version"] == version and len(predicted) > 5

        annotator.open_task(project_id, tasks[article.id])
        page = annotator.page
        page.locator(".lsf-htx-richtext .htx-highlight").first.wait_for(state="visible")
        assert _highlights(page) == predicted

        # The correction: select one of the model's regions with a click and delete it, then add one.
        page.locator(".lsf-htx-richtext .htx-highlight").first.click()
        page.keyboard.press("Backspace")
        page.wait_for_function(
            "count => document.querySelectorAll('.lsf-htx-richtext .htx-highlight').length < count",
            arg=len(predicted),
        )
        kept = _highlights(page)
        (deleted,) = set(predicted) - set(kept)
        added = _span_of(article.text, "more than 20 months", "FIGURE")
        annotator.label(added.text, "f")
        saved = annotator.submit()
        origins = {(r["value"]["start"], r["value"]["end"]): r.get("origin") for r in saved["result"]}
        assert {origins[(span.start, span.end)] for span in kept} == {"prediction"}
        assert origins[(added.start, added.end)] == "manual"
        assert (deleted.start, deleted.end) not in origins
    finally:
        backend.stop()

    output = workspace.annotate("pull")
    (gold,) = workspace.gold()
    assert gold.spans == tuple(sorted([*kept, added]))
    assert "What annotators did to the predictions" in output
    (figures_file,) = (workspace.root / "gold" / "pulled").glob("*.acceptance.json")
    total = json.loads(figures_file.read_text())["model_versions"][version]["total"]
    assert (total["kept"], total["added"], total["deleted"]) == (len(predicted) - 1, 1, 1)
    assert annotator.dialogs == [] and annotator.errors == []
