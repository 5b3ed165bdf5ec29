"""``index.html``: the evaluation as one self-contained page, built from the files the other reports are.

It reads what an evaluation folder already holds — ``metrics.json``, ``predictions-<system>.jsonl``,
and when present ``curve.json`` and ``acceptance.json`` — plus the gold the metrics were computed
on. Images are inline PNGs, the one script is inline, and a Content-Security-Policy allows nothing
else: the page makes no network request. Article text only ever reaches the page escaped: spans
are drawn by spaCy's displaCy span renderer (it escapes token text) and the page by Jinja2 with
autoescape. Nothing here prints.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from annotate.corpus import atomic_write_text, gold_sha256, read_gold
from annotate.curve import CURVE_FILE, CURVE_PLOT
from annotate.errors import EvaluationError, InputError
from annotate.evaluate import Evaluation
from annotate.mistakes import KINDS, Mistake, mistakes
from annotate.plan import plan_section
from annotate.records import AnnotatedDoc, Span
from annotate.report import CHART_SCHEMAS, SECTIONS, chart_png

INDEX_FILE = "index.html"
ACCEPTANCE_FILE = "acceptance.json"
TEMPLATE = "report.html.j2"
MAX_DRAWN = 100  # articles per system drawn side by side (those with most errors); see article_views
# displaCy's default palette has no entry for our labels; one color per label, in schema order.
PALETTE = ("#7aecec", "#feca74", "#c887fb", "#aa9cfc", "#bfe1d9", "#e4e7d2", "#ff8197", "#9cc9cc")


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


def confusion_png(evaluations: Mapping[str, Evaluation]) -> bytes | None:
    """The label confusion of overlapping spans as a heat map per system (rows gold, columns predicted)."""
    systems = [name for name, result in evaluations.items() if result.confusion]
    if not systems:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(systems), figsize=(4.2 * len(systems), 3.8), squeeze=False)
    for axis, system in zip(axes[0], systems, strict=True):
        result = evaluations[system]
        labels = result.labels
        table = [[result.confusion[gold][predicted] for predicted in labels] for gold in labels]
        axis.imshow(table, cmap="Blues")
        top = max((max(row) for row in table), default=0)
        for row, values in enumerate(table):
            for column, value in enumerate(values):
                color = "white" if top and value > top / 2 else "black"
                axis.text(column, row, str(value), ha="center", va="center", color=color, fontsize=8)
        axis.set_xticks(range(len(labels)))
        axis.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
        axis.set_yticks(range(len(labels)))
        axis.set_yticklabels(labels, fontsize=8)
        axis.set_xlabel("predicted")
        axis.set_ylabel("gold")
        axis.set_title(system, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


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


def _provenance_rows(source: Mapping) -> list[tuple[str, str]]:
    rows = []
    for key, value in source.items():
        if key in SECTIONS:
            continue
        if isinstance(value, Mapping):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(" ".join(map(str, item)) if isinstance(item, list) else str(item) for item in value)
        rows.append((str(key), str(value)))
    return rows


def _choice_rows(choices: Sequence[Mapping]) -> list[dict[str, str]]:
    """Each fold's nested choice as table cells."""
    return [
        {
            "held_out": " ".join(choice["held_out"]),
            "seen": " ".join(choice["seen"]),
            "config": Path(choice["config"]).name,
            "thresholds": ", ".join(f"{label} {value:g}" for label, value in choice["thresholds"].items()),
        }
        for choice in choices
    ]


def _score_rows(evaluations: Mapping[str, Evaluation]) -> list[dict]:
    def cell(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.3f}"

    def interval(bounds: tuple[float, float]) -> str:
        return "" if math.isnan(bounds[0]) else f"{bounds[0]:.2f}–{bounds[1]:.2f}"

    rows = []
    for system, result in evaluations.items():
        for schema in CHART_SCHEMAS:
            for name, score in result.scores[schema].items():
                rows.append(
                    {
                        "system": system,
                        "schema": schema,
                        "label": name,
                        "p": cell(score.precision),
                        "r": cell(score.recall),
                        "f1": cell(score.f1),
                        "ci": interval(score.f1_ci),
                        "support": score.support,
                        "predicted": score.predicted,
                    }
                )
    return rows


def _acceptance(folder: Path) -> dict | None:
    """The pre-annotation acceptance figures, when ``acceptance.json`` is in the folder.

    Shown as the JSON it is (its producer, the ML backend's acceptance report, owns the format);
    unreadable JSON is an error.
    """
    path = folder / ACCEPTANCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    return {"file": path.name, "json": json.dumps(data, indent=2, ensure_ascii=False)}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (run `annotate run` or `annotate evaluate` first)") from None
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _curve(folder: Path) -> dict | None:
    path = folder / CURVE_FILE
    if not path.is_file():
        return None
    data = _read_json(path)
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


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(
        loader=PackageLoader("annotate", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


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
) -> str:
    """The page for the evaluation in ``folder``, checked against the gold it was computed on."""
    folder = Path(folder)
    metrics = _read_json(folder / "metrics.json")
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
    articles: list[dict] = []
    kind_counts: dict[str, Counter] = {}
    for system in evaluations:
        path = folder / f"predictions-{system}.jsonl"
        if not path.is_file():
            continue
        for view in article_views(gold, read_gold(path), labels, lang=lang, links=links):
            articles.append({"system": system, "view": view})
            kind_counts.setdefault(system, Counter()).update(row["kind"] for row in view.mistakes)
    confusion = confusion_png(evaluations)
    script = SCRIPT.strip()
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    page = (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=f"Evaluation: {', '.join(evaluations)}",
            provenance=_provenance_rows(source),
            knowledge=dict(source.get("systems_knowledge") or {}),
            choices=_choice_rows(source.get("choices") or []),
            scores=_score_rows(evaluations),
            chart=_png_data_uri(chart_png(evaluations)),
            confusion=_png_data_uri(confusion) if confusion else "",
            curve=_curve(folder),
            plan=plan_section(folder),
            acceptance=_acceptance(folder),
            articles=articles,
            systems=list(evaluations),
            labels=labels,
            kinds=KINDS,
            kind_counts={system: [(kind, counts[kind]) for kind in KINDS] for system, counts in kind_counts.items()},
            project=project,
            max_drawn=MAX_DRAWN,
            default_system="model" if "model" in kind_counts else next(iter(kind_counts), ""),
            script=script,
            script_hash=script_hash,
        )
    )
    return page


def write_html_report(
    folder: str | Path,
    gold: Sequence[AnnotatedDoc],
    *,
    lang: str = "en",
    links: Mapping[str, str] | None = None,
    project: str = "",
) -> Path:
    """Write ``index.html`` into ``folder`` (atomically) and return its path."""
    path = Path(folder) / INDEX_FILE
    atomic_write_text(path, render_report(folder, gold, lang=lang, links=links, project=project))
    return path
