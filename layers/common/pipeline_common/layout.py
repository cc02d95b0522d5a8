"""Names and S3 keys every part of the pipeline agrees on.

One place decides how a data object becomes a model id, what the SageMaker resources of that
model are called, and where its artifacts live; the state machines build the same strings with
``States.Format`` (``tests/asl/test_layout.py`` checks both lists agree).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

RAW_PREFIX = "raw/"
CAPTURE_PREFIX = "datacapture"
VARIANT = "AllTraffic"
NO_ENDPOINT = "none"  # SSM parameters cannot hold an empty string

_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")  # the template's NamePrefix pattern


def model_id_for(prefix: str, bucket: str, key: str, version_id: str | None) -> str:
    """The id of the model trained from one version of one object: also the execution name.

    Deterministic, so a duplicate event for the same object version maps to the same Step
    Functions execution name, which Step Functions refuses to start twice.
    """
    if not _NAME.match(prefix):
        raise ValueError(f"name prefix {prefix!r} must match {_NAME.pattern}")
    digest = hashlib.sha256(f"{bucket}/{key}#{version_id or 'null'}".encode()).hexdigest()
    return f"{prefix}-{digest[:12]}"


@dataclass(frozen=True)
class ModelResources:
    """The SageMaker resources and S3 locations of one model id."""

    model_id: str

    @property
    def dev_endpoint(self) -> str:
        return f"{self.model_id}-dev"

    @property
    def prod_endpoint(self) -> str:
        return f"{self.model_id}-prod"

    @property
    def preparation_job(self) -> str:
        return f"{self.model_id}-prepare"

    @property
    def training_job(self) -> str:
        return f"{self.model_id}-train"

    @property
    def baseline_job(self) -> str:
        return f"{self.model_id}-baseline"

    @property
    def compare_job(self) -> str:
        return f"{self.model_id}-compare"

    @property
    def monitoring_schedule(self) -> str:
        return monitoring_schedule_of(self.prod_endpoint)

    @property
    def run_prefix(self) -> str:
        return f"runs/{self.model_id}/"

    @property
    def prepared_prefix(self) -> str:
        return f"{self.run_prefix}prepared/"

    @property
    def baseline_prefix(self) -> str:
        return f"{self.run_prefix}baseline/"

    @property
    def evaluation_prefix(self) -> str:
        return f"{self.run_prefix}evaluation/"

    @property
    def model_output_prefix(self) -> str:
        return f"{self.run_prefix}model/"


ROLLBACK_INFIX = "-rollback-"


def rollback_name(model_id: str, when: datetime) -> str:
    """A rollback's deploy execution: a promotion's is named after its run, and a name is never
    used twice, so a rollback's carries the time it was asked for."""
    return f"{model_id}{ROLLBACK_INFIX}{when:%Y%m%d%H%M%S}"


def is_rollback(execution_name: str) -> bool:
    return ROLLBACK_INFIX in execution_name


def execution_arn(state_machine_arn: str, name: str) -> str:
    """An execution's ARN from its state machine's and its name (Step Functions' own format)."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def model_id_of_endpoint(endpoint: str) -> str:
    """``<model id>-prod`` / ``<model id>-dev`` back to the model id."""
    for suffix in ("-prod", "-dev"):
        if endpoint.endswith(suffix):
            return endpoint[: -len(suffix)]
    raise ValueError(f"{endpoint!r} is not an endpoint this pipeline named")


def monitoring_schedule_of(endpoint: str) -> str:
    """A production endpoint's hourly drift schedule."""
    return f"{endpoint}-monitor"


def monitoring_prefix(endpoint: str) -> str:
    return f"monitoring/{endpoint}/"
