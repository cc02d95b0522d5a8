"""One list of names: every SageMaker resource name and S3 location the state machines build with
``States.Format`` is one that ``pipeline_common.layout`` gives the Python code, and every name the
layout gives is one the state machines build. A suffix or folder renamed on one side only would
make the functions, the CLI and the demo look for things that are never made."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_common.layout import ModelResources, monitoring_prefix, monitoring_schedule_of

ROOT = Path(__file__).resolve().parents[2]
MODEL_ID = "fare-9b5c86e7fd15"
BUCKET = "artifacts"
FORMAT = re.compile(r"^States\.Format\('(?P<template>[^']*)'")
# A resource name the state machines make for a model: the id, then a suffix.
NAME = re.compile(r"^\{\}(-[a-z]+)+$")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


# The tested endpoint's suffix is the template's choice (PromoteTestedEndpoint): either value.
SUBSTITUTED = {"${TestedEndpointSuffix}": ("dev", "prod")}


def asl_templates() -> set[str]:
    found = set()
    for path in (ROOT / "statemachines").glob("*.asl.json"):
        for text in _strings(json.loads(path.read_text())):
            match = FORMAT.match(text)
            if match:
                found.add(match["template"])
    for name, values in SUBSTITUTED.items():
        found = {t.replace(name, v) for t in found for v in values}
    return found


TEMPLATES = asl_templates()


def rendered(template: str, value: str = MODEL_ID) -> str:
    return template.replace("${ArtifactBucket}", BUCKET).replace("{}", value)


RESOURCES = ModelResources(MODEL_ID)
NAMES = {
    "dev_endpoint": RESOURCES.dev_endpoint,
    "prod_endpoint": RESOURCES.prod_endpoint,
    "preparation_job": RESOURCES.preparation_job,
    "training_job": RESOURCES.training_job,
    "baseline_job": RESOURCES.baseline_job,
    "compare_job": RESOURCES.compare_job,
}
PREFIXES = {
    "prepared_prefix": RESOURCES.prepared_prefix,
    "baseline_prefix": RESOURCES.baseline_prefix,
    "evaluation_prefix": RESOURCES.evaluation_prefix,
    "model_output_prefix": RESOURCES.model_output_prefix,
}


@pytest.mark.parametrize(("member", "name"), NAMES.items())
def test_each_name_the_layout_gives_is_one_the_state_machines_make(member: str, name: str) -> None:
    made = {rendered(t) for t in TEMPLATES if NAME.match(t)}
    assert name in made, f"ModelResources.{member} = {name!r}; the state machines make {made}"


def test_each_name_the_state_machines_make_is_in_the_layout() -> None:
    made = {rendered(t) for t in TEMPLATES if NAME.match(t)}
    # '{}-monitor' is made from an endpoint's name (blue's), not a model id
    known = {*NAMES.values(), RESOURCES.monitoring_schedule, monitoring_schedule_of(MODEL_ID)}
    assert made <= known, f"named by the state machines only: {made - known}"


@pytest.mark.parametrize(("member", "prefix"), PREFIXES.items())
def test_each_folder_the_layout_gives_is_where_the_state_machines_write(
    member: str, prefix: str
) -> None:
    where = f"s3://{BUCKET}/{prefix}"
    used = [
        rendered(t)
        for t in TEMPLATES
        if rendered(t) + "/" == where or rendered(t).startswith(where)
    ]
    assert used, f"ModelResources.{member} = {prefix!r}: no state machine reads or writes there"


def test_each_run_folder_the_state_machines_use_is_in_the_layout() -> None:
    run = f"s3://{BUCKET}/{RESOURCES.run_prefix}"
    used = {rendered(t) for t in TEMPLATES if rendered(t).startswith(run)}
    folders = {f"s3://{BUCKET}/{p}" for p in PREFIXES.values()}
    outside = {u for u in used if not any(u + "/" == f or u.startswith(f) for f in folders)}
    assert not outside, f"run folders the layout does not name: {outside}"


def test_monitoring_names_and_folders_agree() -> None:
    endpoint = RESOURCES.prod_endpoint
    assert RESOURCES.monitoring_schedule == monitoring_schedule_of(endpoint)
    assert monitoring_schedule_of(endpoint) in {rendered(t) for t in TEMPLATES}
    assert f"s3://{BUCKET}/{monitoring_prefix(endpoint)}" in {
        rendered(t, endpoint) + "/" for t in TEMPLATES
    }


def test_a_renamed_suffix_would_be_seen() -> None:
    made = {rendered(t) for t in TEMPLATES if NAME.match(t)}
    assert f"{MODEL_ID}-production" not in made
    assert RESOURCES.prod_endpoint in made
