"""Bringing a project's predictions of some model versions to exactly what a workflow wants.

Push (a model's predictions on tasks already there) and the review sets (an adjudication set, a
model's errors) all keep what is unchanged, delete what is stale and import what is missing, so
a run repeated changes nothing and the annotators' view never shows a prediction twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from annotate import lsformat
from annotate.studio.client import DEFAULT_BATCH, Project, Studio


@dataclass(frozen=True)
class PredictionSync:
    """What ``sync_predictions`` did, counted per task in ``wanted`` and per prediction deleted."""

    added: int = 0  # tasks that held no owned prediction
    replaced: int = 0  # tasks whose owned prediction said something else
    unchanged: int = 0
    removed: int = 0  # owned predictions deleted (replaced, stale or copies)

    @property
    def created(self) -> int:
        return self.added + self.replaced


def sync_predictions(
    studio: Studio,
    project: Project,
    wanted: Mapping[int, dict],
    owned: Callable[[str], bool],
    *,
    only_wanted_tasks: bool = False,
    batch_size: int = DEFAULT_BATCH,
) -> PredictionSync:
    """Make the project's predictions of the versions ``owned`` accepts exactly ``wanted`` (task id → payload).

    A task already carrying the same owned prediction keeps it (once); every other owned prediction
    is deleted, on tasks outside ``wanted`` too unless ``only_wanted_tasks``; the missing ones are
    imported in requests of ``batch_size``. Predictions of versions not owned are left alone.
    """
    had: set[int] = set()
    kept: set[int] = set()
    removed = 0
    for prediction in sorted(studio.project_predictions(project), key=lambda p: int(p["id"])):
        task_id = int(prediction["task"])
        if not owned(str(prediction.get("model_version") or "")) or (only_wanted_tasks and task_id not in wanted):
            continue
        if task_id in wanted:
            had.add(task_id)
            if task_id not in kept and lsformat.same_prediction(prediction, wanted[task_id]):
                kept.add(task_id)
                continue
        studio.delete_prediction(int(prediction["id"]))
        removed += 1
    missing = [{"task": task_id, **payload} for task_id, payload in wanted.items() if task_id not in kept]
    for start in range(0, len(missing), batch_size):
        studio.import_predictions(project, missing[start : start + batch_size])
    return PredictionSync(len(wanted) - len(had), len(had - kept), len(kept), removed)
