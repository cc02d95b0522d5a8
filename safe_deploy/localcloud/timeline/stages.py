"""A run's stages, from what happened: where its executions' histories and CodeDeploy's traffic
shifts divide it, and what each stage waited for.

Projected AWS time runs at the pace of the slowest emulated wait under way: where the local cloud
waited 2.6 s for an endpoint that AWS takes 10 minutes to create, the projection advances 10
minutes. Where real work runs (a job's code, a hook, a Lambda function), it advances as the local
clock does. A Wait state only polls for something else: it counts where nothing else is under
way, which is the tail of the last poll after what it waited for is done (as on AWS, where a
30-second poll notices an endpoint up to 30 s after it is ready). CloudFormation's and
CodeDeploy's own start-up, which the local cloud does not sleep for, add their AWS seconds at the
moment they happen.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from safe_deploy.localcloud.timeline.durations import LOCAL_WORK
from safe_deploy.localcloud.timeline.recorder import Kind, Shift, Span

LOCAL = "local cloud"
AWS = "AWS"

TRAINING = "training"
GATE = "gate, dev endpoint, test"
PERSON = "waiting for a person"
BAKE = "canary bake"
FULL = "100% and clean-up"
ROLLED_BACK = "rolled back and clean-up"


FROM_APPROVAL = "approval → "  # the stages from the decision to the first traffic on green


def to_canary(weight: float) -> str:
    return f"{FROM_APPROVAL}{weight:.0%} canary"


TO_FULL = f"{FROM_APPROVAL}100% of traffic"
TO_TRAFFIC = f"{FROM_APPROVAL}canary"  # no traffic shifted yet
AFTER_DECISION = "after the decision"


@dataclass(frozen=True)
class Boundaries:
    """The moments (epoch seconds) that divide a run, read from its executions' histories."""

    started: float
    ended: float | None = None  # the training execution's end; None while it runs
    gate: float | None = None  # the gate's state entered
    approval_requested: float | None = None  # the approval request's state entered
    decided: float | None = None  # the state after it entered: the decision came
    promotion_started: float | None = None  # the deploy execution named after the run
    promotion_ended: float | None = None

    def promotion(self, now: float) -> tuple[float, float] | None:
        if self.promotion_started is None:
            return None
        end = self.promotion_ended if self.promotion_ended is not None else now
        return self.promotion_started, end


@dataclass(frozen=True)
class Part:
    """What a stage's time went to: local seconds and projected AWS seconds."""

    operation: str
    subject: str
    local: float
    projected: float


@dataclass(frozen=True)
class Stage:
    name: str
    start: float
    end: float
    projected: float | None  # None: a person's wait, or times read from AWS itself
    parts: tuple[Part, ...] = ()
    note: str = ""

    @property
    def local(self) -> float:
        return self.end - self.start

    @property
    def person(self) -> bool:
        return self.name == PERSON


@dataclass(frozen=True)
class RunTimeline:
    model_id: str
    source: str  # LOCAL: local times with projected AWS times; AWS: AWS's own times
    stages: tuple[Stage, ...]
    running: bool
    time_scale: float | None = None

    @property
    def total_local(self) -> float:
        return sum(stage.local for stage in self.stages)

    @property
    def total_projected(self) -> float | None:
        """Projected AWS seconds of every stage but a person's wait."""
        projected = [stage.projected for stage in self.stages if stage.projected is not None]
        return sum(projected) if projected else None

    def stage(self, prefix: str) -> Stage | None:
        return next((s for s in self.stages if s.name.startswith(prefix)), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "source": self.source,
            "running": self.running,
            "time_scale": self.time_scale,
            "stages": [
                {
                    "name": stage.name,
                    "start": stage.start,
                    "end": stage.end,
                    "projected": stage.projected,
                    "note": stage.note,
                    "parts": [
                        {
                            "operation": part.operation,
                            "subject": part.subject,
                            "local": part.local,
                            "projected": part.projected,
                        }
                        for part in stage.parts
                    ],
                }
                for stage in self.stages
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunTimeline:
        return cls(
            model_id=str(data["model_id"]),
            source=str(data["source"]),
            running=bool(data["running"]),
            time_scale=data.get("time_scale"),
            stages=tuple(
                Stage(
                    name=str(stage["name"]),
                    start=float(stage["start"]),
                    end=float(stage["end"]),
                    projected=stage.get("projected"),
                    note=str(stage.get("note") or ""),
                    parts=tuple(
                        Part(
                            str(part["operation"]),
                            str(part["subject"]),
                            float(part["local"]),
                            float(part["projected"]),
                        )
                        for part in stage.get("parts") or []
                    ),
                )
                for stage in data["stages"]
            ),
        )


# ---------------------------------------------------------------------------- which spans
def belongs(span: Span, model_id: str, promotion: tuple[float, float] | None) -> bool:
    """The run's own spans: named after it, or the stack's work while its promotion ran (one
    stack update at a time, and the promotion holds the release lock through its update)."""
    if span.run is not None:
        return span.run == model_id
    if span.stack:
        return promotion is not None and promotion[0] <= span.start <= promotion[1]
    return span.subject.startswith(f"{model_id}-")


@dataclass(frozen=True)
class Traffic:
    """The promotion's traffic shifts: the first partial one, 100%, back to 0%."""

    canary: Shift | None
    full: Shift | None
    back: Shift | None


def traffic(shifts: list[Shift], promotion: tuple[float, float] | None) -> Traffic:
    if promotion is None:
        return Traffic(None, None, None)
    ours = sorted((s for s in shifts if promotion[0] <= s.at <= promotion[1]), key=lambda s: s.at)
    canary = next((s for s in ours if 0.0 < s.weight < 1.0), None)
    full = next((s for s in ours if s.weight >= 1.0), None)
    after = canary.at if canary is not None else full.at if full is not None else None
    back = next((s for s in ours if s.weight <= 0.0 and after is not None and s.at >= after), None)
    return Traffic(canary, full, back)


# ---------------------------------------------------------------------------- projection
def _dominant(active: list[Span], now: float) -> Span | None:
    """What the run waits for in this instant: the slowest emulated wait, else the innermost
    real work, else a poll."""
    waits = [s for s in active if s.kind is Kind.WAIT]
    if waits:
        return max(waits, key=lambda s: s.rate(now))
    work = [s for s in active if s.kind is Kind.WORK]
    if work:
        return max(work, key=lambda s: s.start)
    polls = [s for s in active if s.kind is Kind.POLL]
    if polls:
        return max(polls, key=lambda s: s.rate(now))
    return None


def project(spans: list[Span], start: float, end: float, now: float) -> tuple[float, list[Part]]:
    """Projected AWS seconds of the local interval [start, end), and what they went to."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def add(span: Span | None, local: float, projected: float) -> None:
        key = (span.operation, span.subject) if span is not None else (LOCAL_WORK, "")
        totals[key][0] += local
        totals[key][1] += projected

    def span_end(span: Span) -> float:
        return span.end if span.end is not None else now

    timed = [s for s in spans if s.kind is not Kind.INSTANT and s.local(now) > 0]
    points = [s for s in spans if (s.kind is Kind.INSTANT or s.local(now) <= 0) and s.projected]
    cuts = sorted(
        {start, end} | {t for s in timed for t in (s.start, span_end(s)) if start < t < end}
    )
    for left, right in pairwise(cuts):
        middle = (left + right) / 2
        active = [s for s in timed if s.start <= middle < span_end(s)]
        chosen = _dominant(active, now)
        rate = chosen.rate(now) if chosen is not None and chosen.kind is not Kind.WORK else 1.0
        add(chosen, right - left, rate * (right - left))
    for point in points:
        if start <= point.start < end and point.projected:
            add(point, 0.0, point.projected)
    parts = [
        Part(operation, subject, local, projected)
        for (operation, subject), (local, projected) in totals.items()
    ]
    parts.sort(key=lambda p: p.projected, reverse=True)
    return sum(p.projected for p in parts), parts


# ---------------------------------------------------------------------------- stages
def derive(
    model_id: str,
    bounds: Boundaries,
    spans: list[Span],
    shifts: list[Shift],
    now: float,
    *,
    source: str = LOCAL,
    time_scale: float | None = None,
) -> RunTimeline:
    """The run's stages from what happened. A stage it has not reached is not there; the last
    one it reached ends where the run ended (or now, while it runs)."""
    promotion = bounds.promotion(now)
    moved = traffic(shifts, promotion)
    running = bounds.ended is None
    cuts: list[tuple[str, float]] = [(TRAINING, bounds.started)]
    for name, moment in ((GATE, bounds.gate), (PERSON, bounds.approval_requested)):
        if moment is not None:
            cuts.append((name, moment))
    notes: dict[str, str] = {}
    if bounds.decided is not None:
        if moved.canary is not None:
            cuts.append((to_canary(moved.canary.weight), bounds.decided))
            cuts.append((BAKE, moved.canary.at))
            if moved.full is not None and (moved.back is None or moved.full.at < moved.back.at):
                cuts.append((FULL, moved.full.at))
                if moved.back is not None:
                    notes[FULL] = "rolled back after 100%"
            elif moved.back is not None:
                cuts.append((ROLLED_BACK, moved.back.at))
        elif moved.full is not None:
            cuts.append((TO_FULL, bounds.decided))
            cuts.append((FULL, moved.full.at))
            if moved.back is not None:
                notes[FULL] = "rolled back after 100%"
        else:
            name = TO_TRAFFIC if running else AFTER_DECISION
            cuts.append((name, bounds.decided))
            if not running and promotion is not None:
                notes[name] = "no traffic shifted"
    finish = bounds.ended if bounds.ended is not None else now
    mine = [s for s in spans if belongs(s, model_id, promotion)]
    stages = []
    for index, (name, start) in enumerate(cuts):
        end = cuts[index + 1][1] if index + 1 < len(cuts) else finish
        end = max(start, end)
        projected: float | None = None
        parts: list[Part] = []
        if name != PERSON and source == LOCAL:
            projected, parts = project(mine, start, end, now)
        note = notes.get(name, "")
        if running and index == len(cuts) - 1:
            note = "under way" + (f"; {note}" if note else "")
        stages.append(Stage(name, start, end, projected, tuple(parts), note))
    return RunTimeline(model_id, source, tuple(stages), running, time_scale)
