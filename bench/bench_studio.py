"""Push and pull 10,000 articles against a local Label Studio, next to the plain API calls.

    PYTHONPATH=. python bench/bench_studio.py [--articles 10000] [--url URL --key KEY]

Baselines, measured in the same run on the same server:
- push: one bulk ``projects.import_tasks`` of all articles (no listing, no batching, no checks);
  target: ``annotate push`` at most 1.15× that.
- pull: one ``projects.exports.download_sync(export_type="JSON")`` of 10,000 annotated tasks;
  target: ``annotate pull`` (export, compressed snapshot, validation, pulled + gold files) at most 1.25× that.
  Also printed: how long the server takes to send the export's first byte (it builds the whole
  export first, so almost nothing of our work can overlap the download), and our own work after
  the download, timed alone on the same export (parse, validate, gold, the files).

On a busy machine run it smaller (``--articles 2000``) and read the ratio, not the seconds.

Without ``--url`` a server is started in a temporary folder (the first start takes ~30–80 s,
not counted) and stopped at the end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from label_studio_sdk import LabelStudio

from annotate import lsformat
from annotate.corpus import atomic_write_bytes, read_gold, write_gold, write_pulled
from annotate.labels import label_studio_config, load_schema
from annotate.records import Article, Span
from annotate.studio import local
from annotate.studio.client import Studio
from annotate.studio.pull import pull
from annotate.studio.push import push

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "Hamas",
    "officials",
    "said",
    "“talks”",
    "in",
    "Cairo",
    "—",
    "the",
    "truce",
    "deal,",
    "Israel",
    "and",
    "Egypt;",
    "57,000",
    "people",
    "Zoë",
    "خليل",
    "😀",
]


def synthetic_articles(count: int, seed: int = 7) -> list[Article]:
    """Articles of ~2.5 KB with awkward characters (emoji, Arabic, curly quotes, dashes)."""
    chooser = random.Random(seed)
    return [Article(f"bench{n:06d}", " ".join(chooser.choices(WORDS, k=400)) + f" #{n}.") for n in range(count)]


def gold_spans(article: Article) -> list[Span]:
    """Every "Hamas" as ACTOR and every "57,000 people" as FIGURE: a few dozen spans per article."""
    spans = []
    for word, label in (("Hamas", "ACTOR"), ("57,000 people", "FIGURE")):
        start = article.text.find(word)
        while start != -1:
            spans.append(Span.from_offsets(article.text, start, start + len(word), label))
            start = article.text.find(word, start + 1)
    return spans


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def download_with_first_byte(raw: LabelStudio, project_id: int) -> tuple[bytes, float]:
    """The raw JSON export, and the seconds until its first byte arrived."""
    started, first, chunks = time.perf_counter(), None, []
    for chunk in raw.projects.exports.download_sync(id=project_id, export_type="JSON", download_all_tasks=True):
        if first is None:
            first = time.perf_counter() - started
        chunks.append(chunk)
    return b"".join(chunks), first or 0.0


def work_after_download(exported: bytes, schema, users: dict, folder: Path) -> None:
    """What pull does once the export is here, in the same order: snapshot, parse, validate, gold, files."""
    with ThreadPoolExecutor(max_workers=1) as background:
        saved = background.submit(
            lambda: atomic_write_bytes(folder / "export.json.gz", gzip.compress(exported, compresslevel=3, mtime=0))
        )
        reading = lsformat.parse_export(exported, schema, users)
        saved.result()
    gold = lsformat.gold_from_pulled(reading.annotations, reading.texts, lsformat.DEFAULT_POLICY, "bench")
    lsformat.diff_gold([], gold)
    write_pulled(folder / "pulled.jsonl", reading.annotations)
    write_gold(folder / "gold.jsonl", gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2, help="Measure each step this often; the best counts.")
    parser.add_argument("--url")
    parser.add_argument("--key")
    arguments = parser.parse_args()
    schema = load_schema(ROOT / "guidelines/labels.toml")
    config = label_studio_config(schema)
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as folder:
        folder = Path(folder)
        url, key = arguments.url, arguments.key
        if url is None:
            print("Starting Label Studio in a temporary folder (not timed)…", flush=True)
            info = local.up(folder, port=local.free_port(), timeout=400)
            url, key = info.url, local.read_credentials(local.StudioPaths(folder).credentials).token
        try:
            run(url, key, schema, config, arguments.articles, arguments.rounds, folder)
        finally:
            if arguments.url is None:
                local.down(folder)


def run(url: str, key: str, schema, config: str, count: int, rounds: int, folder: Path) -> None:
    raw = LabelStudio(base_url=url, api_key=key, max_retries=0, timeout=600)
    ours = Studio(url, key)
    articles = synthetic_articles(count)
    tag = uuid.uuid4().hex[:6]
    print(f"{count} articles, {sum(len(a.text.encode()) for a in articles) / 1e6:.1f} MB of text; server {url}")

    # --- push: alternate the raw import and ours, each into a new project; keep the best of each ---
    payloads = [lsformat.task_payload(article) for article in articles]
    raw_imports, our_pushes = [], []
    for round_number in range(rounds):
        baseline_project = raw.projects.create(title=f"bench raw import {tag} {round_number}", label_config=config)
        raw_imports.append(timed(raw.projects.import_tasks, id=baseline_project.id, request=payloads)[0])
        title = f"bench push {tag} {round_number}"
        seconds, report = timed(push, ours, articles, title=title, schema=schema)
        assert report.imported == count, report
        our_pushes.append(seconds)
    repush, again = timed(push, ours, articles, title=title, schema=schema)
    assert again.imported == 0 and again.already_present == count, again

    # --- pull: 10,000 annotated tasks (annotations imported inline; the API takes ~100 ms per annotation) ---
    annotated = raw.projects.create(title=f"bench pull {tag}", label_config=config)
    with_annotations = [
        {**lsformat.task_payload(a), "annotations": [{"result": [lsformat.span_result(s) for s in gold_spans(a)]}]}
        for a in articles
    ]
    raw.projects.import_tasks(id=annotated.id, request=with_annotations)
    raw_exports, first_bytes, our_pulls = [], [], []
    for round_number in range(rounds):
        seconds, (exported, first_byte) = timed(download_with_first_byte, raw, annotated.id)
        raw_exports.append(seconds)
        first_bytes.append(first_byte)
        target = folder / f"round{round_number}"
        seconds, pulled = timed(
            pull,
            ours,
            title=f"bench pull {tag}",
            schema=schema,
            gold_path=target / "gold.jsonl",
            pulled_path=target / "pulled.jsonl",
            snapshots=target / "snapshots",
        )
        our_pulls.append(seconds)
    users = ours.users()
    after_download, _ = timed(work_after_download, exported, schema, users, folder / "alone")
    collected, paused = [], []
    for _ in range(rounds):  # the parse with Python's cyclic collector running (as before) and paused (as pull does)
        collected.append(timed(lambda: lsformat.read_export(json.loads(exported), schema, users))[0])
        paused.append(timed(lsformat.parse_export, exported, schema, users)[0])
    gold = read_gold(target / "gold.jsonl")
    assert len(gold) == count
    assert all(doc.spans == tuple(sorted(gold_spans(a))) for doc, a in zip(gold, articles, strict=True))
    spans = sum(len(doc.spans) for doc in gold)
    raw_import, our_push, raw_export, our_pull = (min(x) for x in (raw_imports, our_pushes, raw_exports, our_pulls))

    def each(values: list[float]) -> str:
        return "  (" + ", ".join(f"{v:.1f}" for v in values) + ")"

    print()
    print(f"{'step':<44}{'seconds':>10}{'ratio':>9}{'target':>9}")
    print(f"best of {rounds} rounds each, alternating; every round in parentheses")
    print(f"{'raw import_tasks (one bulk request)':<44}{raw_import:>10.2f}{'':>18}{each(raw_imports)}")
    push_ratio = f"{our_push / raw_import:>9.2f}{'≤ 1.15':>9}"
    print(f"{'annotate push (list, batches, checks)':<44}{our_push:>10.2f}{push_ratio}{each(our_pushes)}")
    print(f"{'annotate push again (nothing to import)':<44}{repush:>10.2f}")
    print(f"{'raw JSON export (download_sync)':<44}{raw_export:>10.2f}{'':>18}{each(raw_exports)}")
    pull_ratio = f"{our_pull / raw_export:>9.2f}{'≤ 1.25':>9}"
    print(f"{'annotate pull (export, snapshot, gold)':<44}{our_pull:>10.2f}{pull_ratio}{each(our_pulls)}")
    print(f"{'  raw export: first byte after':<44}{min(first_bytes):>10.2f}{'':>18}{each(first_bytes)}")
    print(f"{'  our work after the download, alone':<44}{after_download:>10.2f}")
    print(f"{'  parse + validate, collector running':<44}{min(collected):>10.2f}{'':>18}{each(collected)}")
    ratio = f"{min(paused) / min(collected):>9.2f}"
    print(f"{'  parse + validate, collector paused (pull)':<44}{min(paused):>10.2f}{ratio}{'':>9}{each(paused)}")
    print(
        f"export {len(exported) / 1e6:.0f} MB; pulled {pulled.annotations} annotations, {spans} spans, {len(gold)} docs"
    )


if __name__ == "__main__":
    main()
