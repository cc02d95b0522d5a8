"""The projected AWS timeline of a run in the local cloud.

The local cloud shrinks every wait by its time scale, so its own clock says little about how long
a release takes on AWS. It records each wait it emulates (``recorder``) with the seconds AWS
typically takes for it (``durations``: one table, each entry with its source), divides a run into
stages from its executions' histories and CodeDeploy's traffic shifts (``history``, ``stages``),
and projects each stage's AWS minutes beside its local seconds. A person's wait for the approval
is shown as it was, never projected. ``docs/timeline.md`` explains the method and its limits.
"""

from __future__ import annotations

from typing import Any

from safe_deploy.localcloud.timeline.durations import AWS_DURATIONS, AwsDuration, Rule, aws_seconds
from safe_deploy.localcloud.timeline.history import RunNotFound, run_boundaries
from safe_deploy.localcloud.timeline.recorder import Kind, Recorder, Shift, Span
from safe_deploy.localcloud.timeline.stages import LOCAL, Boundaries, RunTimeline, Stage, derive

TIMELINE_ROUTE = "/_local/timeline/"  # the local cloud's API answers a run's timeline there

__all__ = [
    "AWS_DURATIONS",
    "TIMELINE_ROUTE",
    "AwsDuration",
    "Boundaries",
    "Kind",
    "Recorder",
    "Rule",
    "RunNotFound",
    "RunTimeline",
    "Shift",
    "Span",
    "Stage",
    "aws_seconds",
    "local_timeline",
]


def local_timeline(
    recorder: Recorder,
    sfn: Any,
    training_machine: str,
    deploy_machine: str,
    run: str,
    time_scale: float | None = None,
) -> RunTimeline:
    """Run ``run``'s stages in the local cloud, each with its local and projected AWS time."""
    bounds = run_boundaries(sfn, training_machine, deploy_machine, run)
    spans, shifts = recorder.snapshot()
    return derive(run, bounds, spans, shifts, recorder.clock(), source=LOCAL, time_scale=time_scale)
