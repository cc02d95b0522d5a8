"""The states that feed the gate (docs/gate.md): with a model in production, the Compare job scores
it and the candidate on the candidate's validation rows before Evaluate decides; the S3 locations
they use are the ones the run layout, the Train state and the gate agree on."""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline_common import registry
from pipeline_common.gate import comparison_key
from pipeline_common.layout import ModelResources

from model.compare import COMPARISON_FILE
from tests.support_template import REPO

TRAINING = json.loads((REPO / "statemachines" / "training.asl.json").read_text())
DEPLOY = json.loads((REPO / "statemachines" / "deploy.asl.json").read_text())
GATE: dict[str, Any] = TRAINING["States"]["Candidate"]["Branches"][0]
TRAIN: dict[str, Any] = TRAINING["States"]["TrainAndBaseline"]["Branches"][0]["States"]["Train"]
MODEL_ID = "fare-9b5c86e7fd15"
BUCKET = "artifacts"


def _format(expression: str, *values: str) -> str:
    """``States.Format('...{}...', $.model_id, ...)`` with the bucket placeholder filled in."""
    match = re.fullmatch(r"States\.Format\('(.*)', (.*)\)", expression)
    assert match, expression
    template = match.group(1).replace("${ArtifactBucket}", BUCKET)
    for value in values:
        template = template.replace("{}", value, 1)
    assert "{}" not in template
    return template


def _path(start: str, choose: dict[str, bool]) -> list[str]:
    """The states the gate's branch passes through, taking each Choice as ``choose`` says (up to
    the first Choice it does not name)."""
    states, name, seen = GATE["States"], start, []
    while name in states and name not in seen:
        seen.append(name)
        state = states[name]
        if state["Type"] == "Choice":
            if name not in choose:
                break
            (rule,) = state["Choices"]
            name = rule["Next"] if choose[name] else state["Default"]
        else:
            name = state.get("Next", "")
    return seen


def test_without_a_model_in_production_the_gate_runs_no_comparison() -> None:
    path = _path(GATE["StartAt"], {"ChampionInRegistry": False, "HasChampion": False})
    assert path[:4] == ["ReadChampion", "ChampionInRegistry", "HasChampion", "Evaluate"]
    assert GATE["States"]["HasChampion"]["Choices"][0]["Variable"] == "$.champion.record.model_id"


def test_with_a_model_in_production_compare_runs_before_evaluate() -> None:
    for in_registry in (True, False):
        for old_record in (False, True):
            path = _path(
                GATE["StartAt"],
                {
                    "ChampionInRegistry": in_registry,
                    "HasChampion": True,
                    "ChampionArtifact": not old_record,
                },
            )
            read = ["ReadChampion", "ChampionInRegistry"] + (
                ["ReadChampionPackage"] if in_registry else []
            )
            assert path[: len(read) + 2] == [*read, "HasChampion", "ChampionArtifact"]
            assert path[len(read) + 3 : len(read) + 5] == ["Compare", "Evaluate"]
    read = GATE["States"]["ReadChampion"]
    assert read["Parameters"]["Name"] == "${ChampionParameter}"
    assert read["ResultSelector"] == {"record.$": "States.StringToJson($.Parameter.Value)"}


def test_an_old_record_finds_the_production_model_where_its_training_job_wrote_it() -> None:
    """Records written before they carried model_data_url: SageMaker writes a training job's
    model to ``<S3OutputPath>/<job name>/output/model.tar.gz``."""
    derived = GATE["States"]["ChampionArtifactFromLayout"]["Parameters"]["model_data_url.$"]
    output_path = _format(TRAIN["Parameters"]["OutputDataConfig"]["S3OutputPath.$"], MODEL_ID)
    job_name = _format(TRAIN["Parameters"]["TrainingJobName.$"], MODEL_ID)

    expected = f"{output_path}/{job_name}/output/model.tar.gz"
    assert _format(derived, MODEL_ID, MODEL_ID) == expected
    resources = ModelResources(MODEL_ID)
    assert expected == (
        f"s3://{BUCKET}/{resources.model_output_prefix}{resources.training_job}/output/model.tar.gz"
    )


def test_the_champion_record_comes_from_the_registry() -> None:
    """The deploy state machine's record only points at the version serving production; the
    gate reads that version's artifact, id and validation RMSE from the registry."""
    record = DEPLOY["States"]["BuildChampionRecord"]["Parameters"]
    assert record == {"model_package_arn.$": "$.model_package_arn"}
    in_registry = GATE["States"]["ChampionInRegistry"]["Choices"][0]
    assert in_registry["Variable"] == "$.champion.record.model_package_arn"
    package = GATE["States"]["ReadChampionPackage"]
    assert package["Resource"].endswith(":sagemaker:describeModelPackage")
    assert package["Parameters"] == {"ModelPackageName.$": "$.champion.record.model_package_arn"}
    assert package["ResultPath"] == "$.champion.record"
    selected = package["ResultSelector"]
    assert selected["model_data_url.$"] == "$.InferenceSpecification.Containers[0].ModelDataUrl"
    assert selected["model_id.$"] == f"$.CustomerMetadataProperties.{registry.MODEL_ID}"
    assert selected["validation_rmse.$"] == (
        f"$.CustomerMetadataProperties.{registry.VALIDATION_RMSE}"
    )
    from_record = GATE["States"]["ChampionArtifactFromRecord"]["Parameters"]
    assert from_record == {"model_data_url.$": "$.champion.record.model_data_url"}


def test_compare_scores_both_models_on_the_candidates_validation_rows() -> None:
    parameters = GATE["States"]["Compare"]["Parameters"]
    inputs = {i["InputName"]: i["S3Input"] for i in parameters["ProcessingInputs"]}
    (validation_channel,) = [
        c for c in TRAIN["Parameters"]["InputDataConfig"] if c["ChannelName"] == "validation"
    ]

    assert inputs["candidate"]["S3Uri.$"] == "$.jobs.train.model_data_url"
    assert inputs["champion"]["S3Uri.$"] == "$.champion.artifact.model_data_url"
    # the very rows the candidate's validation:rmse was measured on
    assert (
        inputs["validation"]["S3Uri.$"]
        == validation_channel["DataSource"]["S3DataSource"]["S3Uri.$"]
    )
    assert inputs["code"]["S3Uri"] == "${ModelCodeS3Uri}"
    environment = parameters["Environment"]
    assert environment["CHAMPION_MODEL_ID.$"] == "$.champion.record.model_id"
    assert environment["CANDIDATE_MODEL_ID.$"] == "$.model_id"
    command = parameters["AppSpecification"]["ContainerEntrypoint"]
    assert command[:3] == ["python3", "-m", "model.compare"]
    for name, s3_input in inputs.items():
        if name != "code":
            assert command[command.index(f"--{name}") + 1] == s3_input["LocalPath"]


def test_comparison_json_lands_where_the_gate_reads_it() -> None:
    parameters = GATE["States"]["Compare"]["Parameters"]
    (output,) = parameters["ProcessingOutputConfig"]["Outputs"]
    command = parameters["AppSpecification"]["ContainerEntrypoint"]

    assert command[command.index("--output") + 1] == output["S3Output"]["LocalPath"]
    uploaded = f"{_format(output['S3Output']['S3Uri.$'], MODEL_ID)}/{COMPARISON_FILE}"
    assert uploaded == f"s3://{BUCKET}/{comparison_key(MODEL_ID)}"


def test_a_failed_comparison_stops_the_run_with_the_jobs_reason() -> None:
    catches = {c["ErrorEquals"][0]: c["Next"] for c in GATE["States"]["Compare"]["Catch"]}
    assert catches == {"States.TaskFailed": "CompareFailureKind", "States.ALL": "CandidateFailed"}
    # States.TaskFailed catches CreateProcessingJob's own errors too: their Cause is not the job
    call_failed = _path("CompareFailureKind", {"CompareFailureKind": False})
    assert call_failed == ["CompareFailureKind", "CandidateFailed"]
    said_why = _path(
        "CompareFailureKind", {"CompareFailureKind": True, "CompareFailedReason": True}
    )
    assert said_why == [
        "CompareFailureKind",
        "CompareFailed",
        "CompareFailedReason",
        "CompareExitMessage",
        "CandidateFailed",
    ]
    assert GATE["States"]["CompareExitMessage"]["Parameters"]["Cause.$"] == (
        "$.failure.Job.ExitMessage"  # the script's own words (/opt/ml/output/message)
    )
    silent = _path("CompareFailed", {"CompareFailedReason": False})
    assert silent[-2:] == ["CompareFailureReason", "CandidateFailed"]
