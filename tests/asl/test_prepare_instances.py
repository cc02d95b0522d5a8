"""PrepareInstanceCount: PrepareData runs on that many processing instances, each dealt its share
of the input, and every state that reads what it wrote reads a prefix matching both layouts:
one host's ``validation.csv`` and several hosts' ``validation/<host>.csv``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from model.prepare import (
    HOST_OUTPUT_FILES,
    HOST_TRAIN_PART_FILE,
    OUTPUT_FILES,
    TRAIN_PART_FILE,
)
from tests.support_asl import machines, tasks
from tests.support_template import load_sam

SAM = load_sam()
(TRAINING,) = [m for m in machines(SAM) if m.logical_id == "TrainingStateMachine"]
STATES = dict(tasks(TRAINING.definition))
PREPARED = re.compile(r"/prepared/(?P<name>[^']*)'")


def _s3_inputs(state: dict[str, Any]) -> list[str]:
    """The S3 URIs a processing or training job state reads."""
    parameters = state["Parameters"]
    uris = [i["S3Input"].get("S3Uri.$", "") for i in parameters.get("ProcessingInputs", [])]
    uris += [
        c["DataSource"]["S3DataSource"].get("S3Uri.$", "")
        for c in parameters.get("InputDataConfig", [])
    ]
    return uris


def test_prepare_data_runs_on_the_parameters_instance_count() -> None:
    parameters = STATES["PrepareData"]["Parameters"]
    cluster = parameters["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount.$"] == "States.StringToJson('${PrepareInstanceCount}')"
    assert "PrepareInstanceCount" in TRAINING.substitutions
    inputs = {i["InputName"]: i["S3Input"] for i in parameters["ProcessingInputs"]}
    assert inputs["raw"]["S3DataDistributionType"] == "ShardedByS3Key"  # a share each
    assert inputs["code"]["S3DataDistributionType"] == "FullyReplicated"  # the code for all


def test_the_parameter_is_bounded_and_grouped_with_sagemakers() -> None:
    parameter = SAM["Parameters"]["PrepareInstanceCount"]
    assert (parameter["Type"], parameter["Default"]) == ("Number", 1)
    assert (parameter["MinValue"], parameter["MaxValue"]) == (1, 20)
    groups = SAM["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (sagemaker,) = [g for g in groups if g["Label"]["default"] == "SageMaker"]
    assert "PrepareInstanceCount" in sagemaker["Parameters"]


READERS = {
    "TrainAndBaseline[0]/Train": {"train", "validation"},
    "TrainAndBaseline[1]/Baseline": {"baseline"},
    "Candidate[0]/Compare": {"validation"},
}


def _written(name: str) -> list[str]:
    """Every file either layout writes for an output, below ``prepared/``."""
    if name == "train":
        several = HOST_TRAIN_PART_FILE.format(host="algo-2", part=0)
        return [OUTPUT_FILES["train"], TRAIN_PART_FILE.format(0), several]
    return [OUTPUT_FILES[name], HOST_OUTPUT_FILES[name].format(host="algo-2")]


@pytest.mark.parametrize(("state", "outputs"), READERS.items())
def test_readers_of_prepared_outputs_match_both_layouts(state: str, outputs: set[str]) -> None:
    read = {m["name"] for uri in _s3_inputs(STATES[state]) if (m := PREPARED.search(uri))}
    assert read == outputs
    for name in read:
        for written in _written(name):
            assert written.startswith(name), (state, name, written)
