"""index.html in a real browser (Debian chromium, Playwright), opened from disk with the network blocked.

Every request the page makes is recorded and only the file itself may be fetched; nothing may be
logged as a console error (a script blocked by the page's Content-Security-Policy would be);
the label and kind filters show exactly the matching errors; the hostile article does not run.

Without /usr/bin/chromium or Playwright the tests skip, unless ``CI`` is set: there they fail.
``ANNOTATE_SCREENSHOTS=DIR`` copies the screenshot into DIR (docs/report.png is made that way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from annotate.htmlreport import write_html_report
from annotate.mistakes import KINDS
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, missing_browser_parts
from tests.report_fixture import EXPECTED_KINDS, EXPECTED_LABELS, LABELS, write_fixed_evaluation

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180, func_only=True)]

SCREENSHOTS_COPY = (
    Path(os.environ["ANNOTATE_SCREENSHOTS"]).resolve() if os.environ.get("ANNOTATE_SCREENSHOTS") else None
)


@pytest.fixture(scope="module")
def browser():
    missing = missing_browser_parts()
    if missing:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("; ".join(missing) + " (CI is set, so this fails instead of skipping)")
        pytest.skip("; ".join(missing))
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def opened(browser, tmp_path):
    """index.html of the fixed evaluation, open in a page that may fetch nothing but the file itself."""
    folder = tmp_path / "reports"
    gold = write_fixed_evaluation(folder)
    index = write_html_report(folder, gold, links={"plain": "http://127.0.0.1:9/projects/3/data?task=7"}, project="R")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    requests: list[str] = []
    problems: list[str] = []

    def only_the_file(route) -> None:
        if route.request.url == index.as_uri():
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_the_file)
    page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    try:
        yield page, index, requests, problems
    finally:
        context.close()


def _shown_rows(page) -> list[dict]:
    return page.eval_on_selector_all(
        "tr.mistake", "rows => rows.filter(r => !r.hidden).map(r => ({...r.dataset, visible: r.offsetParent !== null}))"
    )


def test_the_page_asks_for_nothing_and_logs_no_error(opened):
    page, index, requests, problems = opened
    assert [url for url in requests if not url.startswith("data:")] == [index.as_uri()]
    assert problems == []
    assert page.locator("img").count() == 2
    assert all(page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)"))


def test_filters_show_only_the_chosen_label_and_kind(opened, tmp_path):
    page, _, _, problems = opened
    rows = _shown_rows(page)
    assert len(rows) == sum(EXPECTED_KINDS.values()) and all(row["visible"] for row in rows)
    for label in LABELS:
        page.select_option("#filter-label", label)
        rows = _shown_rows(page)
        assert len(rows) == EXPECTED_LABELS[label], label
        assert all(label in row["labels"].split() and row["visible"] for row in rows)
        assert page.locator("#shown-total").inner_text() == str(EXPECTED_LABELS[label])
    page.select_option("#filter-label", "")
    for kind in KINDS:
        page.select_option("#filter-kind", kind)
        rows = _shown_rows(page)
        assert len(rows) == EXPECTED_KINDS[kind] and {row["kind"] for row in rows} == {kind}
    page.select_option("#filter-kind", "boundary")
    page.select_option("#filter-label", "DEMAND")
    assert [(row["kind"], row["labels"]) for row in _shown_rows(page)] == [("boundary", "DEMAND")]
    page.select_option("#filter-kind", "")
    page.select_option("#filter-label", "")
    page.locator("section.article details").nth(1).evaluate("d => d.open = true")
    page.locator("section.article").nth(1).evaluate("s => window.scrollTo(0, s.offsetTop - 60)")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SCREENSHOTS_COPY is not None:
        SCREENSHOTS_COPY.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS_COPY / shot.name)
    assert problems == []


def test_the_hostile_article_is_shown_as_text_and_never_runs(opened):
    page, _, _, problems = opened
    page.locator("section.article details").first.evaluate("d => d.open = true")
    ran = page.evaluate("[window.__reportPwned, window.__reportImg, window.__reportFrame]")
    assert ran == [None, None, None]
    assert "pwned" not in page.title()
    assert page.locator("script").count() == 1
    assert page.locator("iframe, section.article b, section.article style, section.article img").count() == 0
    assert page.evaluate("getComputedStyle(document.body).display") != "none"
    assert page.get_by_text("<style>body{display:none}</style> Hamas said", exact=False).first.is_visible()
    assert page.locator("a[href^='javascript:']").count() == 0
    link = page.locator("a", has_text="task").first
    assert link.get_attribute("href") == "http://127.0.0.1:9/projects/3/data?task=7"
    assert problems == []
