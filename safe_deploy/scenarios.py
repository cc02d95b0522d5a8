"""The demo's failure scenarios: what goes wrong in each."""

from __future__ import annotations

SCENARIOS: dict[str, str] = {
    "training-fails": "month 2's training job is given a hyperparameter XGBoost refuses",
    "gate-rejects": "month 2 has 35% fare inflation: fares far above what production expects",
    "approval-rejected": "the reviewer rejects month 2's model on the approval page",
    "approval-times-out": "nobody answers month 2's approval request",
    "pre-traffic-fails": "green answers an implausible fare to the pre-traffic hook",
    "green-errors": "green fails requests during the canary bake: the alarm rolls back",
    "no-capture": "green serves but writes no capture: the post-traffic hook fails",
}
