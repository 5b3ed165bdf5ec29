"""Training a model on a Label Studio project's annotations: what the ML backend's child process runs.

The annotations are read and validated exactly as ``pull`` reads them (any bad span stops the
training with every problem named), turned into gold by the same policy, and trained with the
same :func:`annotate.train.train`; ``gold/gold.jsonl`` is not touched. The model is saved
atomically into a new folder, so the backend never loads half a model.
"""

from __future__ import annotations

from pathlib import Path

from annotate import lsformat
from annotate.errors import TrainingError
from annotate.labels import Schema
from annotate.studio.client import Studio
from annotate.studio.pull import fetch_annotations
from annotate.train import TrainResult, train


def train_from_project(
    connection: Studio,
    *,
    title: str,
    schema: Schema,
    config_path: Path,
    output: Path,
    lang: str = "en",
    seed: int = 0,
    policy: str = lsformat.DEFAULT_POLICY,
) -> TrainResult:
    """Train on the project's submitted annotations (one per article, chosen as ``pull`` chooses)."""
    found = fetch_annotations(connection, title=title, schema=schema)
    texts = {article.id: article.text for article in found.articles}
    gold = lsformat.gold_from_pulled(found.annotations, texts, policy, title)
    if not gold:
        raise TrainingError(f"project {title!r} has no submitted annotation to train on")
    if not any(doc.spans for doc in gold):
        raise TrainingError(f"the {len(gold)} annotated article(s) of project {title!r} have no spans to learn from")
    return train(
        gold, output, config_path=config_path, labels=schema.names, schema_sha256=schema.sha256, seed=seed, lang=lang
    )
