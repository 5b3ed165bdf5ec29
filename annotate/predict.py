"""A saved spaCy pipeline as a predictor of spans: what push, the ML backend and apply all call.

The same function turns texts into spans with scores wherever predictions are made, so a span
Label Studio shows, a span `apply` writes and a span `evaluate` scores are the same span.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from annotate.labels import Schema
from annotate.records import Span


@dataclass(frozen=True)
class Predictor:
    """A trained spaCy pipeline whose ``doc.spans["sc"]`` become Label Studio predictions."""

    predict: Callable[[list[str]], list[list[tuple[Span, float]]]]
    model_version: str
    # The same spans as ``predict``, streamed: ``stream(texts, n_process=…, batch_size=…)`` (``apply``).
    stream: Callable[..., Iterator[list[tuple[Span, float]]]] | None = None


def model_version(model_dir: Path) -> str:
    """The folder name plus a hash of every file in it: a retrained model gets a new version."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(model_dir)).encode())
        digest.update(path.read_bytes())
    return f"{model_dir.resolve().name}-{digest.hexdigest()[:12]}"


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

    def stream(
        texts: Iterable[str], *, n_process: int = 1, batch_size: int | None = None
    ) -> Iterator[list[tuple[Span, float]]]:
        for doc in nlp.pipe(texts, n_process=n_process, batch_size=batch_size):
            group = doc.spans.get(SPAN_KEY, [])
            scores = list(group.attrs.get("scores", [])) if hasattr(group, "attrs") else []
            spans = []
            for number, span in enumerate(group):
                if span.label_ not in schema:
                    raise InputError(f"{model_dir}: the model predicts label {span.label_!r}, not in the schema")
                score = float(scores[number]) if number < len(scores) else 1.0
                spans.append((Span.from_offsets(doc.text, span.start_char, span.end_char, span.label_), score))
            yield spans

    def predict(texts: list[str]) -> list[list[tuple[Span, float]]]:
        return list(stream(texts))

    return Predictor(predict, model_version(model_dir), stream)
