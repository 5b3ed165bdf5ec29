"""The seconds each annotation took, as Label Studio records them: what ``annotate plan`` turns into hours.

Label Studio stores on every annotation its ``lead_time``: the seconds the labeling view was open
on the task until the annotation was submitted, added up over later edits. It is read from the
project's JSON export through the public :class:`~annotate.studio.client.Studio` API, by annotator.
Cancelled (skipped) annotations make no gold and are counted apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from annotate.errors import StudioError
from annotate.lsformat import annotator_name  # the one rule for naming an export's annotator
from annotate.studio.client import Studio


@dataclass(frozen=True)
class LeadTimes:
    """Each annotator's ``lead_time`` per submitted annotation (None where Label Studio recorded none)."""

    project: str
    annotators_per_task: int
    seconds: dict[str, list[float | None]] = field(default_factory=dict)
    cancelled: int = 0


def annotation_lead_times(studio: Studio, title: str) -> LeadTimes:
    """Every submitted annotation's ``lead_time`` in project ``title``, by annotator (one export)."""
    project = studio.project(title)
    users = studio.users()
    try:
        tasks = json.loads(studio.export_json(project))
    except ValueError:
        tasks = None
    if not isinstance(tasks, list):
        raise StudioError(f"Label Studio at {studio.url} sent an export of {title!r} that is not a JSON list")
    seconds: dict[str, list[float | None]] = {}
    cancelled = 0
    for task in tasks:
        for annotation in (task.get("annotations") or []) if isinstance(task, Mapping) else []:
            if annotation.get("was_cancelled"):
                cancelled += 1
                continue
            lead_time = annotation.get("lead_time")
            number = (
                float(lead_time) if isinstance(lead_time, (int, float)) and not isinstance(lead_time, bool) else None
            )
            who = annotator_name(annotation.get("completed_by"), users) or "unknown"
            seconds.setdefault(who, []).append(number)
    return LeadTimes(project.title, project.annotators_per_task, seconds, cancelled)
