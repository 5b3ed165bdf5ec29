"""The annotator's path in a real browser: Debian chromium, driven by Playwright, on the test Label Studio.

Articles go in with ``annotate push``, an annotator labels in the labeling view with a real mouse
drag and a hotkey, and ``annotate pull`` must bring back exactly that span, in code points.
The server is the session's one test server (tests/studio_server.py); each test has its own
project and its own project folder, so tests do not depend on each other's order.

Without /usr/bin/chromium or Playwright the tests skip, unless ``CI`` is set: there they fail.
Set ``ANNOTATE_SCREENSHOTS=DIR`` to also copy the screenshots into DIR (docs/labeling-view.png
is made that way).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotate import lsformat
from annotate.articles import read_articles
from annotate.cli import app
from annotate.corpus import read_gold
from annotate.errors import StudioServerError
from annotate.labels import instructions_html
from annotate.records import Span
from annotate.studio import local
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, missing_browser_parts

pytest_plugins = ["tests.studio_server"]
pytestmark = [pytest.mark.browser, pytest.mark.studio, pytest.mark.timeout(180, func_only=True)]

VIEWPORT = {"width": 1400, "height": 900}
# Resolved now: the tests run the CLI from project folders of their own (chdir).
SCREENSHOTS_COPY = (
    Path(os.environ["ANNOTATE_SCREENSHOTS"]).resolve() if os.environ.get("ANNOTATE_SCREENSHOTS") else None
)
ACTION_TIMEOUT_MS = 20_000  # a click, a fill, a selector to appear
PAGE_TIMEOUT_MS = 60_000  # a page load (the labeling view's first load compiles a large bundle)
SAVE_TIMEOUT_MS = 30_000  # Submit until the server has answered

# Where the phrase is (in the browser's own string indices) and the boxes of its first and last
# character, so the drag starts and ends inside the phrase, as a person's would.
_PHRASE_BOXES = """([phrase]) => {
  const root = document.querySelector('.lsf-htx-richtext');
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(phrase);
    if (at < 0) continue;
    node.parentElement.scrollIntoView({block: 'center'});
    const box = (i) => {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const r = range.getBoundingClientRect();
      return {x: r.x, y: r.y, width: r.width, height: r.height};
    };
    return {first: box(at), last: box(at + phrase.length - 1)};
  }
  return null;
}"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session", autouse=True)
def _browser_and_server_present():
    """Runs before the session's server starts: skip at once locally; under CI, fail (also without label-studio)."""
    missing = missing_browser_parts()
    if _in_ci():
        try:
            local.require_label_studio()
        except StudioServerError as exc:
            missing.append(str(exc))
        if missing:
            pytest.fail("; ".join(missing) + " (CI is set, so this fails instead of skipping)")
    elif missing:
        pytest.skip("; ".join(missing))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=PAGE_TIMEOUT_MS
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def admin(local_studio) -> local.Credentials:
    return local.read_credentials(local.StudioPaths(local_studio.root).credentials)


@pytest.fixture(scope="module")
def logged_in(browser, local_studio, admin) -> dict:
    """Log in once through the real login form; each test's context starts from this session cookie."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        page.goto(f"{local_studio.url}/user/login/")
        page.fill("input[name=email]", admin.email)
        page.fill("input[name=password]", admin.password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/user/login" not in url)
        assert any(cookie["name"] == "sessionid" for cookie in context.cookies()), "login set no session cookie"
        return context.storage_state()
    finally:
        context.close()


@dataclass
class Annotator:
    """One browser tab of a logged-in annotator, with what the page did that it should not have."""

    page: object
    url: str
    dialogs: list
    errors: list

    def open_task(self, project_id: int, task_id: int) -> None:
        self.page.goto(f"{self.url}/projects/{project_id}/data?task={task_id}")
        self.page.wait_for_selector(".lsf-htx-richtext", state="visible")
        self.page.wait_for_selector(".lsf-labels .lsf-label", state="visible")
        self.page.wait_for_load_state("networkidle")  # the view has settled: hotkeys bound, text laid out

    def label(self, phrase: str, hotkey: str) -> None:
        """Press the label's hotkey, then drag the mouse across the phrase (the order Label Studio needs)."""
        self.page.keyboard.press(hotkey)
        hotkey_text = self.page.locator(".lsf-label__hotkey", has_text=re.compile(f"^{re.escape(hotkey)}$"))
        self.page.locator(".lsf-labels .lsf-label_selected", has=hotkey_text).wait_for(state="visible")
        regions_before = self.page.locator(".lsf-htx-richtext .htx-highlight").count()
        boxes = self.page.evaluate(_PHRASE_BOXES, [phrase])
        assert boxes is not None, f"{phrase!r} is not shown in the labeling view"
        first, last = boxes["first"], boxes["last"]
        mouse = self.page.mouse
        mouse.move(first["x"] + first["width"] * 0.3, first["y"] + first["height"] / 2)
        mouse.down()
        mouse.move(last["x"] + last["width"] * 0.7, last["y"] + last["height"] / 2, steps=8)
        mouse.up()
        self.page.wait_for_function(
            "before => document.querySelectorAll('.lsf-htx-richtext .htx-highlight').length > before",
            arg=regions_before,
        )

    def submit(self) -> dict:
        """Click Submit and return the annotation as the server saved it."""
        with self.page.expect_response(
            lambda r: re.search(r"/api/tasks/\d+/annotations", r.url) and r.request.method == "POST",
            timeout=SAVE_TIMEOUT_MS,
        ) as saved:
            self.page.click("button[data-testid=bottombar-submit-button]")
        assert saved.value.status == 201, f"Submit answered HTTP {saved.value.status}"
        return saved.value.json()

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path))
        if SCREENSHOTS_COPY is not None:
            SCREENSHOTS_COPY.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS_COPY / path.name)
        return path


@pytest.fixture
def annotator(browser, logged_in, local_studio):
    context = browser.new_context(viewport=VIEWPORT, storage_state=logged_in)
    try:
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        dialogs: list[str] = []
        errors: list[str] = []

        def dismiss(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", dismiss)
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield Annotator(page, local_studio.url, dialogs, errors)
    finally:
        context.close()


# --- the project folder and the CLI ------------------------------------------------------------------


@dataclass
class Workspace:
    """A project folder of its own (its own gold), using the repository's schema, guidelines and seeds."""

    root: Path
    title: str
    env: dict
    connection: object

    def annotate(self, *arguments: str) -> str:
        result = CliRunner().invoke(app, list(arguments), env=self.env)
        assert result.exit_code == 0, result.output
        return result.output

    def tasks(self) -> tuple[int, dict[str, int]]:
        """The project id and doc_id → task id, as the server has them."""
        project = self.connection.project(self.title)
        return project.id, {doc_id: tasks[0][0] for doc_id, tasks in self.connection.task_index(project).items()}

    def gold(self):
        return read_gold(self.root / "gold" / "gold.jsonl")


@pytest.fixture
def workspace(tmp_path, monkeypatch, local_studio, settings) -> Workspace:
    title = f"News spans {uuid.uuid4().hex[:8]}"
    (tmp_path / "pyproject.toml").write_text(
        "[tool.annotate]\n"
        f'schema = "{settings.schema}"\n'
        f'guidelines = "{settings.guidelines}"\n'
        f'seeds = "{settings.seeds}"\n'
        'gold = "gold/gold.jsonl"\n'
        f'project = "{title}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    env = {"LABEL_STUDIO_URL": local_studio.url, "LABEL_STUDIO_API_KEY": local_studio.token}
    return Workspace(tmp_path, title, env, local_studio.connect())


def _span_of(text: str, phrase: str, label: str) -> Span:
    assert text.count(phrase) == 1, f"{phrase!r} must occur once in the article"
    start = text.index(phrase)
    return Span.from_offsets(text, start, start + len(phrase), label)


def _saved_spans(annotation: dict) -> list[Span]:
    """The spans exactly as the browser sent them (offsets unchecked, as the server stores them)."""
    found = []
    for result in annotation["result"]:
        value = result["value"]
        found.extend(Span(value["start"], value["end"], label, value["text"]) for label in value["labels"])
    return sorted(found)


def _words(text: str) -> list[str]:
    """The words of a text, whatever the markup: Markdown source and its rendering have the same words."""
    return re.findall(r"\w+", text)


def _shows_words_of(shown: str, source: str) -> bool:
    return " ".join(_words(source)) in " ".join(_words(shown))


class _TextOf(HTMLParser):
    """The text of an HTML fragment, as a browser would show it (list numbers aside)."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.feed(fragment)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _write_article(folder: Path, doc_id: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    return folder


def _highlights(page) -> list[Span]:
    """The regions drawn over the text: their text, label and the code-point offsets the view holds."""
    found = page.eval_on_selector_all(
        ".lsf-htx-richtext .htx-highlight",
        "nodes => nodes.map(n => [Number(n.dataset.start), Number(n.dataset.end), n.dataset.label, n.textContent])",
    )
    return sorted(Span(start, end, label.split(":", 1)[-1], text) for start, end, label, text in found)


# --- the tests ------------------------------------------------------------------------------------------


def test_label_a_seed_by_hotkey_and_mouse_drag_then_pull(workspace, annotator, admin, settings, schema):
    assert "5 article(s) imported, 0 already there" in workspace.annotate("push")
    project_id, tasks = workspace.tasks()
    article = read_articles([settings.seeds])[0]
    expected = _span_of(article.text, "the US and Israel", "ACTOR")
    annotator.open_task(project_id, tasks[article.id])
    page = annotator.page

    buttons = page.locator(".lsf-labels .lsf-label")
    shown = [
        (button.locator(".lsf-label__text").inner_text(), button.locator(".lsf-label__hotkey").inner_text())
        for button in buttons.all()
    ]
    assert shown == [(label.name, label.hotkey) for label in schema.labels]
    demand = schema.labels[schema.names.index("DEMAND")]
    buttons.filter(has_text="DEMAND").hover()
    page.get_by_text(demand.definition).wait_for(state="visible")

    page.get_by_role("button", name="Instructions").click()
    instructions = page.locator(
        ".lsf-modal-ls_visible", has=page.locator(".lsf-modal-ls__title", has_text="Instructions")
    )
    instructions.wait_for(state="visible")
    rendered = instructions_html(settings.guidelines.read_text(encoding="utf-8"))
    shown = instructions.locator(".lsf-modal-ls__body").inner_text()
    assert _shows_words_of(shown, " ".join(_TextOf(rendered).parts)), "the instructions shown are not the guidelines"
    assert instructions.locator(".lsf-modal-ls__body h1").count() == 1, "the guide is not rendered from Markdown"
    assert "**" not in shown and "| ---" not in shown
    instructions.get_by_role("button", name="Close modal").click()
    instructions.wait_for(state="hidden")

    annotator.label(expected.text, "a")
    assert _saved_spans(annotator.submit()) == [expected]

    assert "Repaired" not in workspace.annotate("pull")
    (doc,) = workspace.gold()
    assert (doc.id, doc.text, doc.spans, doc.annotator) == (article.id, article.text, (expected,), admin.email)
    assert annotator.dialogs == [] and annotator.errors == []


EMOJI_ARTICLE = (
    "Talks 😀 resume as 🇵🇸 flags fly and 👩‍👩‍👧 families wait. "
    "Cafe\u0301 owner Zoë said Hamas demands a complete withdrawal from Gaza."
)


def test_offsets_after_emoji_are_code_points(workspace, annotator):
    folder = _write_article(workspace.root / "articles", "emoji", EMOJI_ARTICLE)
    assert "1 article(s) imported" in workspace.annotate("push", str(folder))
    project_id, tasks = workspace.tasks()
    expected = _span_of(EMOJI_ARTICLE, "a complete withdrawal", "DEMAND")
    assert lsformat.utf16_offset(EMOJI_ARTICLE, expected.start) == expected.start + 6  # the test must tell them apart

    annotator.open_task(project_id, tasks["emoji"])
    annotator.label(expected.text, "d")
    assert _highlights(annotator.page) == [expected]
    assert _saved_spans(annotator.submit()) == [expected]

    assert "Repaired" not in workspace.annotate("pull")
    (doc,) = workspace.gold()
    assert (doc.text, doc.spans) == (EMOJI_ARTICLE, (expected,))
    assert doc.text[doc.spans[0].start : doc.spans[0].end] == "a complete withdrawal"


HTML_ARTICLE = (
    'Before <script>window.__annotatePwned = 1; document.title = "pwned";</script> the <b>bold</b> claim '
    '<img src="x" onerror="window.__annotateImg = 1"> and <iframe srcdoc="<script>parent.__annotateFrame = 1'
    '</script>"></iframe> &amp; <a href="javascript:alert(1)">link</a> <style>body{display:none}</style>'
    "Hamas said talks resume."
)


def test_html_in_an_article_is_shown_as_text_and_never_runs(workspace, annotator):
    folder = _write_article(workspace.root / "articles", "html", HTML_ARTICLE)
    workspace.annotate("push", str(folder))
    project_id, tasks = workspace.tasks()
    annotator.open_task(project_id, tasks["html"])
    page = annotator.page

    view = page.locator(".lsf-htx-richtext")
    assert view.text_content() == HTML_ARTICLE
    assert view.locator("script, img, iframe, b, a, style").count() == 0
    assert page.get_by_text("<script>window.__annotatePwned", exact=False).first.is_visible()
    ran = page.evaluate("[window.__annotatePwned, window.__annotateImg, window.__annotateFrame]")
    assert ran == [None, None, None]
    assert "pwned" not in page.title()

    expected = _span_of(HTML_ARTICLE, "Hamas said", "ATTRIBUTION")
    annotator.label(expected.text, "t")
    assert _saved_spans(annotator.submit()) == [expected]
    workspace.annotate("pull")
    (doc,) = workspace.gold()
    assert (doc.text, doc.spans) == (HTML_ARTICLE, (expected,))
    assert page.evaluate("[window.__annotatePwned, window.__annotateImg, window.__annotateFrame]") == ran
    assert annotator.dialogs == []


def test_predictions_are_shown_to_the_annotator_who_corrects_them(
    workspace, annotator, settings, tmp_path, ruler_model_dir
):
    import spacy

    from annotate.model import model_version

    nlp = spacy.load(ruler_model_dir)
    version = model_version(ruler_model_dir)
    assert f"5 with predictions from {version}" in workspace.annotate("push", "--predictions", str(ruler_model_dir))

    project_id, tasks = workspace.tasks()
    article = read_articles([settings.seeds])[0]
    doc = nlp(article.text)
    predicted = sorted(Span.from_offsets(doc.text, s.start_char, s.end_char, s.label_) for s in doc.spans["sc"])
    assert len(predicted) > 10
    annotator.open_task(project_id, tasks[article.id])
    page = annotator.page

    tab = page.locator(".lsf-annotation-button", has_text="%").filter(has_text=version[-6:])
    tab.wait_for(state="visible")
    name = tab.locator(".lsf-annotation-button__name").inner_text()
    assert name.startswith(version[:8]) and name.endswith(version[-6:]), name
    assert "100.00%" in tab.inner_text()
    page.locator(".lsf-htx-richtext .htx-highlight").first.wait_for(state="visible")
    assert _highlights(page) == predicted

    added = _span_of(article.text, "more than 20 months", "FIGURE")
    annotator.label(added.text, "f")
    shot = annotator.screenshot(tmp_path / "labeling-view.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    saved = annotator.submit()
    origins = {(r["value"]["start"], r["value"]["end"]): r.get("origin") for r in saved["result"]}
    assert {origins[(span.start, span.end)] for span in predicted} == {"prediction"}
    assert origins[(added.start, added.end)] == "manual"
    assert _saved_spans(saved) == sorted([*predicted, added])

    workspace.annotate("pull")
    (gold,) = workspace.gold()
    assert gold.spans == tuple(sorted([*predicted, added]))
