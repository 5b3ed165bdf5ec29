"""Benchmark: inference speed of the trained span pipeline in words per second, next to spaCy's ``ner``.

Measured with ``nlp.pipe`` over at least 50,000 words (the gold articles repeated), next to a
baseline measured in the same run: a spaCy ``ner`` pipeline of the standard tok2vec architecture
(``spacy.blank("en")`` + the default ``ner`` factory, initialised with our labels). The goal
(issue 23) is the model at ≥ 1.0× the baseline in CPU words/s; the pipelines take turns, pass
after pass, and each keeps its best pass, so a busy moment of a shared machine hits them alike.
Also shown: the rules alone and the model with the rules after it. Run:
``PYTHONPATH=. python bench/bench_inference.py [--model models/spancat] [--words 50000]``.
Without ``--model`` it trains one on the gold first with configs/spancat.cfg (about a minute).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import spacy

from annotate.corpus import read_gold
from annotate.labels import load_schema
from annotate.model import BATCH_WORDS, load_pipeline
from annotate.rules import add_rules, load_patterns, rule_pipeline
from annotate.settings import load_settings
from annotate.train import train_pipeline


def words_per_second(
    pipelines: dict, texts: list[str], words: int, batch_size: int, passes: int = 5
) -> dict[str, tuple[float, float]]:
    """Per pipeline, its best pass (the first also warms caches): wall-clock and CPU-time words/s.

    The CPU-time figure is what this process itself spent; on a machine shared with other jobs it
    moves much less than the wall-clock one. The pipelines run in turns within each pass.
    """
    best = {name: [float("inf"), float("inf")] for name in pipelines}
    for _ in range(passes):
        for name, nlp in pipelines.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _doc in nlp.pipe(texts, batch_size=batch_size):
                pass
            best[name][0] = min(best[name][0], time.perf_counter() - wall)
            best[name][1] = min(best[name][1], time.process_time() - cpu)
    return {name: (words / wall, words / cpu) for name, (wall, cpu) in best.items()}


def ner_baseline(labels: list[str]):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    for label in labels:
        ner.add_label(label)
    nlp.initialize()
    return nlp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a pipeline saved by `annotate train`")
    parser.add_argument("--words", type=int, default=50_000)
    args = parser.parse_args()
    settings = load_settings()
    schema = load_schema(settings.schema)
    gold = read_gold(settings.gold)
    patterns = load_patterns(settings.root / "guidelines" / "patterns.jsonl", schema.names)
    model_dir = args.model
    if model_dir is None:
        model_dir = Path(tempfile.mkdtemp(prefix="annotate-bench-model-"))
        train_pipeline(gold, settings.root / "configs" / "spancat.cfg", schema.names).to_disk(model_dir)
    model = load_pipeline(model_dir)
    texts, words = [], 0
    tokenizer = spacy.blank("en").tokenizer
    while words < args.words:
        for doc in gold:
            texts.append(doc.text)
            words += sum(1 for token in tokenizer(doc.text) if not token.is_space and not token.is_punct)
    # The toolkit predicts in batches of at most BATCH_WORDS words (annotate.model.Predictor): about
    # 13 seed-length articles. 64 articles at a time is what this benchmark used before issue 23.
    toolkit = max(1, round(BATCH_WORDS / (words / len(texts))))
    print(f"{len(texts)} articles, {words:,} words (tokens that are not spaces or punctuation), best of 5 passes")
    baseline = "baseline spaCy ner (standard tok2vec)"
    pipelines = {
        baseline: ner_baseline(schema.names),
        "rules alone (SpanRuler)": rule_pipeline(patterns),
        "model": model,
        "model + rules": add_rules(load_pipeline(model_dir), patterns),
    }
    for batch_size, why in ((toolkit, f"the toolkit's {BATCH_WORDS:,}-word batches"), (64, "64 articles a batch")):
        figures = words_per_second(pipelines, texts, words, batch_size)
        print(f"\nnlp.pipe(batch_size={batch_size}): {why}")
        print(f"{'':<40} {'wall-clock':>10} {'CPU time':>10} {'CPU vs ner':>10}  (words/s)")
        for name, (wall, cpu) in figures.items():
            print(f"{name:<40} {wall:>10,.0f} {cpu:>10,.0f} {cpu / figures[baseline][1]:>9.2f}×")
        ratio = figures["model"][1] / figures[baseline][1]
        print(f"goal: the model ≥ 1.0× spaCy ner in CPU words/s: {ratio:.2f}× ({'met' if ratio >= 1.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
