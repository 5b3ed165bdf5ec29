"""Gold to the spaCy DocBin file that ``spacy train`` reads: what ``annotate convert`` does, as one call.

The span placement and its audit are :func:`annotate.convert.to_spacy_docs`; this module adds the
file around it (gold validated first, the target checked before anything is read, written atomically).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annotate.convert import SPAN_KEY, AuditEntry, blank_pipeline, docbin_bytes, is_docbin, to_spacy_docs
from annotate.corpus import atomic_write_bytes
from annotate.gold import validated_gold
from annotate.labels import Schema
from annotate.targets import check_file_target


@dataclass(frozen=True)
class Conversion:
    """What was written where, and every span that had to move to sit on token boundaries."""

    out: Path
    spans_per_article: tuple[int, ...]
    audit: tuple[AuditEntry, ...]

    @property
    def articles(self) -> int:
        return len(self.spans_per_article)

    @property
    def spans(self) -> int:
        return sum(self.spans_per_article)


def convert(
    gold_path: str | Path,
    out: str | Path,
    *,
    schema: Schema,
    lang: str = "en",
    strict: bool = False,
    force: bool = False,
) -> Conversion:
    """Validate the gold, place its spans on spaCy tokens and write them as a DocBin to ``out``.

    ``out`` must be absent or a DocBin (anything else only with ``force``); with ``strict`` a span
    off token boundaries is a ConversionError and nothing is written.
    """
    out = Path(out)
    check_file_target(out, recognise=is_docbin, what="spaCy DocBin", force=force)
    docs, audit = to_spacy_docs(blank_pipeline(lang), validated_gold(gold_path, schema), strict=strict)
    atomic_write_bytes(out, docbin_bytes(docs))
    return Conversion(out, tuple(len(doc.spans[SPAN_KEY]) for doc in docs), tuple(audit))
