"""``index.html``: the evaluation as one self-contained page, built from the files the other reports are.

It reads what an evaluation folder already holds — ``metrics.json``, ``predictions-<system>.jsonl``,
and when present ``curve.json`` and ``acceptance.json`` — plus the gold the metrics were computed
on. Images are inline PNGs, the one script is inline, and a Content-Security-Policy allows nothing
else: the page makes no network request. Article text only ever reaches the page escaped: spans
are drawn by spaCy's displaCy span renderer (it escapes token text) and the page by the templates
of :mod:`annotate.presentation` (Jinja2 with autoescape). The page is a list of sections, each a
partial template; a new section is one more :class:`Section` in :func:`render_report`'s list.
Nothing here prints.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from annotate.artifacts import read_artifact
from annotate.corpus import atomic_write_text, gold_sha256
from annotate.curve import CURVE_FILE, CURVE_PLOT, CURVE_SHAPE
from annotate.errors import EvaluationError, InputError
from annotate.evaluate import Evaluation
from annotate.figures import CHART_SCHEMAS, chart_png, confusion_png
from annotate.gold import validated_predictions
from annotate.labels import LabelDef, Schema
from annotate.mistakes import KINDS, Mistake, mistakes
from annotate.plan import plan_section
from annotate.presentation import evaluation_view, render
from annotate.records import AnnotatedDoc, Span
from annotate.report import read_metrics
from annotate.targets import check_folder_target

INDEX_FILE = "index.html"
ACCEPTANCE_FILE = "acceptance.json"
INDEX_TEMPLATE = "index.html.j2"
MAX_DRAWN = 100  # articles per system drawn side by side (those with most errors); see article_views
# displaCy's default palette has no entry for our labels; one color per label, in schema order.
PALETTE = ("#7aecec", "#feca74", "#c887fb", "#aa9cfc", "#bfe1d9", "#e4e7d2", "#ff8197", "#9cc9cc")


@dataclass(frozen=True)
class Section:
    """One section of the page: its anchor, its name in the navigation, and the template that draws it."""

    anchor: str
    title: str
    template: str


# The page is these sections in this order (each a partial in annotate/templates); the navigation lists them.
PROVENANCE = Section("provenance", "Provenance", "provenance.html.j2")
SCORES = Section("scores", "Scores", "scores.html.j2")
CONFUSION = Section("confusion", "Confusion", "confusion.html.j2")
CURVE = Section("curve", "Learning curve", "curve.html.j2")  # when curve.json is in the folder
PLAN = Section("plan", "Plan", "plan.html.j2")  # when plan.json is in the folder (annotate plan)
ACCEPTANCE = Section("acceptance", "Pre-annotation acceptance", "acceptance.html.j2")  # when acceptance.json is
ERRORS = Section("errors", "Errors", "errors.html.j2")


@dataclass(frozen=True)
class ArticleView:
    """One article of the error browser: gold and predicted spans drawn, and its mistakes."""

    doc_id: str
    gold_html: str
    predicted_html: str
    mistakes: list[dict]
    link: str


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _spans_html(nlp, text: str, spans: Sequence[tuple[Span, str]], colors: Mapping[str, str]) -> str:
    """displaCy's span rendering of ``text`` with each span shown under its caption.

    displaCy escapes the tokens; the captions (labels and error kinds) are ours, escaped here,
    because its template inserts them as they are.
    """
    from spacy import displacy

    doc = nlp.make_doc(text)
    parsed_spans = []
    for span, caption in spans:
        tokens = doc.char_span(span.start, span.end, alignment_mode="expand")
        if tokens is None:
            continue
        parsed_spans.append({"start_token": tokens.start, "end_token": tokens.end, "label": html.escape(caption)})
    palette = {html.escape(caption).upper(): colors.get(span.label, PALETTE[-1]) for span, caption in spans}
    parsed = {"text": text, "tokens": [token.text for token in doc], "spans": parsed_spans}
    return displacy.render(parsed, style="span", manual=True, options={"colors": palette}, jupyter=False)


def _captions(spans: Sequence[Span], kinds: Mapping[Span, str]) -> list[tuple[Span, str]]:
    return [(span, f"{span.label} · {kinds[span]}" if span in kinds else span.label) for span in spans]


def _context(text: str, mistake: Mistake, width: int = 60) -> tuple[str, str, str]:
    start, end = mistake.start, mistake.end
    return text[max(0, start - width) : start], text[start:end], text[end : end + width]


def article_views(
    gold: Sequence[AnnotatedDoc],
    predicted: Sequence[AnnotatedDoc],
    labels: Sequence[str],
    *,
    lang: str = "en",
    links: Mapping[str, str] | None = None,
    drawn: int = MAX_DRAWN,
) -> list[ArticleView]:
    """Every gold article with its mistakes listed; the ``drawn`` articles with most mistakes also drawn.

    displaCy's markup is about 250 kB per article of ~1,000 words, so drawing every article of a
    large gold would make a page no browser opens; the error tables are always complete.
    """
    import spacy

    nlp = spacy.blank(lang)
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    by_id = {doc.id: doc for doc in predicted}
    gold_by_id = {doc.id: doc for doc in gold}
    links = links or {}
    views = []
    found_by_id = mistakes(gold, predicted)
    worst = sorted(found_by_id, key=lambda doc_id: -len(found_by_id[doc_id]))[:drawn]
    to_draw = set(worst)
    for doc_id, found in found_by_id.items():
        gold_doc = gold_by_id[doc_id]
        gold_kinds = {m.gold: "missed" if m.kind == "false negative" else m.kind for m in found if m.gold}
        predicted_kinds = {m.predicted: m.kind for m in found if m.predicted}
        rows = []
        for number, mistake in enumerate(found):
            left, middle, right = _context(gold_doc.text, mistake)
            rows.append(
                {
                    "id": f"{doc_id}-{number}",
                    "kind": mistake.kind,
                    "labels": " ".join(mistake.labels),
                    "gold": mistake.gold,
                    "predicted": mistake.predicted,
                    "left": left,
                    "middle": middle,
                    "right": right,
                }
            )
        gold_html = predicted_html = ""
        if doc_id in to_draw:
            gold_html = _spans_html(nlp, gold_doc.text, _captions(gold_doc.spans, gold_kinds), colors)
            predicted_html = _spans_html(nlp, gold_doc.text, _captions(by_id[doc_id].spans, predicted_kinds), colors)
        views.append(ArticleView(doc_id, gold_html, predicted_html, rows, links.get(doc_id, "")))
    return views


def _acceptance(folder: Path, files: Sequence[Path] = ()) -> list[dict]:
    """The pre-annotation acceptance figures: ``acceptance.json`` in the folder, then each file in ``files``.

    ``files`` are what ``pull`` wrote beside its pulled files (``annotate report`` passes those of
    the project's pulled folder), which ``agreement`` reads too. Shown as the JSON they are (their
    producer owns the format); unreadable JSON is an error naming the file.
    """
    found = []
    for path in [folder / ACCEPTANCE_FILE, *files]:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{path}: not JSON ({exc})") from None
        found.append({"file": path.name, "json": json.dumps(data, indent=2, ensure_ascii=False)})
    return found


def _curve(folder: Path) -> dict | None:
    path = folder / CURVE_FILE
    if not path.is_file():
        return None
    data = read_artifact(path, CURVE_SHAPE, "a learning curve of annotate", hint="run `annotate curve` again")
    plot = folder / CURVE_PLOT
    readings = []
    for schema, step in (data.get("last_step") or {}).items():
        if step:
            verdict = "still raises" if step["still_rising"] else "no longer raises"
            noise = "beyond" if step["beyond_spread"] else "within"
            readings.append(
                f"{schema} micro F1: {step['from_size']} → {step['to_size']} articles {verdict} F1 "
                f"({step['from_f1']:.3f} → {step['to_f1']:.3f}, {step['gain']:+.3f}; {noise} the spread "
                f"±{step['spread']:.3f} between repeats)"
            )
    return {
        "image": _png_data_uri(plot.read_bytes()) if plot.is_file() else "",
        "readings": readings,
        "sizes": data.get("sizes", []),
        "repeats": (data.get("provenance") or {}).get("repeats"),
    }


SCRIPT = """
(function () {
  const label = document.getElementById('filter-label');
  const kind = document.getElementById('filter-kind');
  const system = document.getElementById('filter-system');
  function apply() {
    for (const row of document.querySelectorAll('tr.mistake')) {
      const labels = row.dataset.labels.split(' ');
      const show = (label.value === '' || labels.includes(label.value))
        && (kind.value === '' || row.dataset.kind === kind.value)
        && (system.value === '' || row.dataset.system === system.value);
      row.hidden = !show;
    }
    for (const article of document.querySelectorAll('section.article')) {
      const shown = article.querySelectorAll('tr.mistake:not([hidden])').length;
      article.querySelector('.shown').textContent = String(shown);
      article.hidden = system.value !== '' && article.dataset.system !== system.value;
    }
    let total = document.querySelectorAll('tr.mistake:not([hidden])').length;
    document.getElementById('shown-total').textContent = String(total);
  }
  for (const select of [label, kind, system]) select.addEventListener('change', apply);
  apply();
})();
"""


def render_report(
    folder: str | Path,
    gold: Sequence[AnnotatedDoc],
    *,
    lang: str = "en",
    links: Mapping[str, str] | None = None,
    project: str = "",
    acceptance_files: Sequence[Path] = (),
) -> str:
    """The page for the evaluation in ``folder``, checked against the gold it was computed on.

    ``acceptance_files``: pull's acceptance figures to show besides any ``acceptance.json`` in ``folder``.
    """
    folder = Path(folder)
    metrics = read_metrics(folder)
    source = metrics.get("provenance") or {}
    expected = source.get("gold_sha256")
    if expected and gold and gold_sha256(gold) != expected:
        raise EvaluationError(
            f"{folder / 'metrics.json'} was computed on gold {expected[:12]}, but the gold given has "
            f"{gold_sha256(gold)[:12]}; evaluate again (or pass the gold it was computed on)"
        )
    try:
        evaluations = {name: Evaluation.from_dict(data) for name, data in (metrics.get("systems") or {}).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{folder / 'metrics.json'}: not a metrics file of annotate ({exc!r})") from None
    if not evaluations:
        raise InputError(f"{folder / 'metrics.json'}: no systems in it")
    labels = next(iter(evaluations.values())).labels
    evaluated = Schema(tuple(LabelDef(name, "", "", "") for name in labels))  # what predictions are checked against
    articles: list[dict] = []
    kind_counts: dict[str, Counter] = {}
    for system in evaluations:
        path = folder / f"predictions-{system}.jsonl"
        if not path.is_file():
            continue
        predicted = validated_predictions(path, evaluated, gold)
        for article in article_views(gold, predicted, labels, lang=lang, links=links):
            articles.append({"system": system, "article": article})
            kind_counts.setdefault(system, Counter()).update(row["kind"] for row in article.mistakes)
    confusion = confusion_png(evaluations)
    curve = _curve(folder)
    plan = plan_section(folder)
    acceptance = _acceptance(folder, acceptance_files)
    script = SCRIPT.strip()
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return render(
        INDEX_TEMPLATE,
        view=evaluation_view(evaluations, source, title=f"Evaluation: {', '.join(evaluations)}"),
        sections=[
            PROVENANCE,
            SCORES,
            CONFUSION,
            *([CURVE] if curve else []),
            *([PLAN] if plan else []),
            *([ACCEPTANCE] if acceptance else []),
            ERRORS,
        ],
        chart_schemas=CHART_SCHEMAS,
        chart=_png_data_uri(chart_png(evaluations)),
        confusion=_png_data_uri(confusion) if confusion else "",
        curve=curve,
        plan=plan,
        acceptance=acceptance,
        articles=articles,
        labels=labels,
        kinds=KINDS,
        kind_counts={system: [(kind, counts[kind]) for kind in KINDS] for system, counts in kind_counts.items()},
        project=project,
        max_drawn=MAX_DRAWN,
        default_system="model" if "model" in kind_counts else next(iter(kind_counts), ""),
        script=script,
        script_hash=script_hash,
    )


def write_html_report(
    folder: str | Path,
    gold: Sequence[AnnotatedDoc],
    *,
    lang: str = "en",
    links: Mapping[str, str] | None = None,
    project: str = "",
    acceptance_files: Sequence[Path] = (),
) -> Path:
    """Write ``index.html`` into ``folder`` (atomically) and return its path."""
    check_folder_target(folder, marker=None, what="reports folder")  # never written through a link
    path = Path(folder) / INDEX_FILE
    page = render_report(folder, gold, lang=lang, links=links, project=project, acceptance_files=acceptance_files)
    atomic_write_text(path, page)
    return path
