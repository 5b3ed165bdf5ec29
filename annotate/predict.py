"""A saved spaCy pipeline as a predictor of spans: what push, the ML backend and apply all call.

The same function turns texts into spans with scores wherever predictions are made, so a span
Label Studio shows, a span `apply` writes and a span `evaluate` scores are the same span.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from annotate import lsformat
from annotate.labels import Schema
from annotate.records import Span


@dataclass(frozen=True)
class Predictor:
    """A trained spaCy pipeline whose ``doc.spans["sc"]`` become Label Studio predictions."""

    predict: Callable[[list[str]], list[list[tuple[Span, float]]]]
    model_version: str
    # The same spans as ``predict``, streamed: ``stream(texts, n_process=…, batch_size=…)`` (``apply``).
    stream: Callable[..., Iterator[list[tuple[Span, float]]]] | None = None


def task_score(scores: list[float]) -> float:
    """How sure the model is about a whole article: the score of its least certain span.

    A kept span scores at least the component's threshold, so an article whose weakest span sits
    just above it is the one an annotator should check first; an article with no span scores 1.0
    (nothing to correct). Label Studio's uncertainty sampling serves the lowest score first.
    """
    return round(min(scores, default=1.0), 4)


def label_studio_prediction(spans: list[tuple[Span, float]], version: str) -> dict:
    """One article's spans as a Label Studio prediction: what push imports and the ML backend answers."""
    scored = sorted(spans, key=lambda pair: pair[0])
    result = []
    for span, score in scored:
        region = lsformat.span_result(span)
        region["score"] = round(score, 4)
        result.append(region)
    return {"model_version": version, "score": task_score([score for _, score in spans]), "result": result}


META_FILE = "annotate_meta.json"


def pipeline_sha256(path: str | Path) -> str:
    """A model's identity: a hash of a saved pipeline's files (names and bytes), our meta file excluded.

    The one hash everywhere: ``annotate train`` prints it, ``annotate_meta.json`` records it as
    ``model_sha256``, and Label Studio shows its first 12 digits in the model version.
    """
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != META_FILE):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def model_version(model_dir: Path) -> str:
    """The folder name plus the model's hash (:func:`pipeline_sha256`): a retrained model gets a new version."""
    return f"{Path(model_dir).resolve().name}-{pipeline_sha256(model_dir)[:12]}"


def load_predictor(model_dir: Path, schema: Schema) -> Predictor:
    """Load a saved pipeline (``spacy.load``); its spans under ``sc`` are the predictions."""
    import spacy

    from annotate.convert import SPAN_KEY
    from annotate.errors import InputError

    model_dir = Path(model_dir)
    if not (model_dir / "config.cfg").is_file():
        raise InputError(f"{model_dir}: not a saved spaCy pipeline (no config.cfg)")
    try:
        nlp = spacy.load(model_dir)
    except (OSError, ValueError) as exc:
        raise InputError(f"{model_dir}: cannot load the pipeline ({exc})") from None

    known = frozenset(schema.names)

    def stream(
        texts: Iterable[str], *, n_process: int = 1, batch_size: int | None = None
    ) -> Iterator[list[tuple[Span, float]]]:
        # Each text travels with its doc (spaCy's as_tuples), so a stream is read once, in batches.
        pairs = ((text, text) for text in texts)
        for doc, text in nlp.pipe(pairs, as_tuples=True, n_process=n_process, batch_size=batch_size):
            group = doc.spans.get(SPAN_KEY, [])
            scores = list(group.attrs.get("scores", [])) if hasattr(group, "attrs") else []
            spans = []
            for number, span in enumerate(group):
                label = span.label_
                if label not in known:
                    raise InputError(f"{model_dir}: the model predicts label {label!r}, not in the schema")
                score = float(scores[number]) if number < len(scores) else 1.0
                # The input text, not doc.text: spaCy rebuilds doc.text from its tokens on every access.
                spans.append((Span.from_offsets(text, span.start_char, span.end_char, label), score))
            yield spans

    def predict(texts: list[str]) -> list[list[tuple[Span, float]]]:
        return list(stream(texts))

    return Predictor(predict, model_version(model_dir), stream)
