"""The states that keep the model registry (docs/registry.md): the training state machine
registers every candidate that passes the gate and records its test and its approval or
rejection; the deploy state machine releases only an Approved version, from its package, and
records when each version served. Walked through their Choices as Step Functions would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pipeline_common import registry
from pipeline_common.layout import ModelResources

from tests.support_template import REPO

TRAINING = json.loads((REPO / "statemachines" / "training.asl.json").read_text())
DEPLOY = json.loads((REPO / "statemachines" / "deploy.asl.json").read_text())
CANDIDATE: dict[str, Any] = TRAINING["States"]["Candidate"]["Branches"][0]["States"]
MODEL_ID = "fare-9b5c86e7fd15"
BUCKET = "artifacts"


# ---------------------------------------------------------------------------- a Choice walker
def _value(document: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    current: Any = document
    for part in path.removeprefix("$.").split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _holds(rule: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    if "And" in rule:
        return all(_holds(r, document) for r in rule["And"])
    if "Or" in rule:
        return any(_holds(r, document) for r in rule["Or"])
    if "Not" in rule:
        return not _holds(rule["Not"], document)
    present, value = _value(document, rule["Variable"])
    if "IsPresent" in rule:
        return present is rule["IsPresent"]
    assert present, f"{rule['Variable']} is read without IsPresent: a runtime error on AWS"
    if "IsString" in rule:
        return isinstance(value, str) is rule["IsString"]
    if "BooleanEquals" in rule:
        return bool(value is rule["BooleanEquals"])
    if "StringEquals" in rule:
        return bool(value == rule["StringEquals"])
    if "StringEqualsPath" in rule:
        return bool(value == _value(document, rule["StringEqualsPath"])[1])
    if "StringMatches" in rule:
        pattern = re.escape(rule["StringMatches"]).replace(r"\*", ".*")
        return re.fullmatch(pattern, str(value), re.DOTALL) is not None
    raise NotImplementedError(rule)


def walk(
    states: Mapping[str, Any], start: str, document: Mapping[str, Any], limit: int = 100
) -> list[str]:
    """The first ``limit`` states entered from ``start`` (fewer when one ends or fails); a Task
    goes to its Next (it succeeds), Choices decide on ``document``."""
    path: list[str] = []
    name = start
    while name and name not in path and len(path) < limit:
        path.append(name)
        state = states[name]
        if state["Type"] == "Choice":
            name = next(
                (r["Next"] for r in state["Choices"] if _holds(r, document)), state["Default"]
            )
        else:
            name = state.get("Next", "")
    return path


def _metadata_keys(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key == "CustomerMetadataProperties" and isinstance(inner, Mapping):
                yield from (k.removesuffix(".$") for k in inner)
            else:
                yield from _metadata_keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _metadata_keys(inner)


def _format(expression: str, *values: str) -> str:
    match = re.fullmatch(r"States\.Format\('(.*)', (.*)\)", expression)
    assert match, expression
    text = match.group(1).replace("${ArtifactBucket}", BUCKET)
    for value in values:
        text = text.replace("{}", value, 1)
    return text


# ---------------------------------------------------------------------------- training
def test_the_metadata_the_state_machines_write_is_what_the_registry_module_reads() -> None:
    written = set(_metadata_keys(TRAINING)) | set(_metadata_keys(DEPLOY))
    rollback_record = {registry.ROLLED_BACK_BY, registry.ROLLBACK_REASON}  # from safe-deploy
    assert written | rollback_record == registry.METADATA_KEYS
    assert all(registry.metadata_allows(key) for key in registry.METADATA_KEYS)


def test_only_a_candidate_that_passed_the_gate_is_registered() -> None:
    passed = walk(CANDIDATE, "GatePassed", {"gate": {"evaluation": {"passed": True}}}, 3)
    assert passed[:3] == ["GatePassed", "RegisterCandidate", "CreateDevModel"]
    rejected = walk(CANDIDATE, "GatePassed", {"gate": {"evaluation": {"passed": False}}})
    assert rejected == ["GatePassed", "ModelRejected"]


def test_a_candidate_is_registered_pending_with_what_made_it() -> None:
    register = CANDIDATE["RegisterCandidate"]
    parameters = register["Parameters"]
    assert register["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:createModelPackage"
    assert parameters["ModelPackageGroupName"] == "${ModelPackageGroupName}"
    assert parameters["ModelApprovalStatus"] == registry.PENDING
    (container,) = parameters["InferenceSpecification"]["Containers"]
    assert container == {
        "Image": "${XGBoostImage}",
        "ModelDataUrl.$": "$.jobs.train.model_data_url",
    }
    resources = ModelResources(MODEL_ID)
    quality = parameters["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri.$"]
    assert _format(quality, MODEL_ID) == f"s3://{BUCKET}/{registry.model_quality_key(MODEL_ID)}"
    baseline = parameters["DriftCheckBaselines"]["ModelDataQuality"]
    for kind, file in (("Statistics", "statistics.json"), ("Constraints", "constraints.json")):
        uri = _format(baseline[kind]["S3Uri.$"], MODEL_ID)
        assert uri == f"s3://{BUCKET}/{resources.baseline_prefix}{file}"
    metadata = parameters["CustomerMetadataProperties"]
    assert metadata["model_id.$"] == "$.model_id"
    assert metadata["source_key.$"] == "$.source.key"
    assert metadata["code_version"] == "${ModelCodeVersion}"
    assert parameters["MetadataProperties"]["GeneratedBy.$"] == "$$.Execution.Id"
    assert register["ResultPath"] == "$.registry"


def test_the_baseline_it_records_is_the_one_the_baseline_job_writes() -> None:
    (baseline,) = [
        b["States"]["Baseline"]
        for b in TRAINING["States"]["TrainAndBaseline"]["Branches"]
        if "Baseline" in b["States"]
    ]
    (output,) = baseline["Parameters"]["ProcessingOutputConfig"]["Outputs"]
    written = _format(output["S3Output"]["S3Uri.$"], MODEL_ID)
    recorded = CANDIDATE["RegisterCandidate"]["Parameters"]["DriftCheckBaselines"]
    statistics = recorded["ModelDataQuality"]["Statistics"]["S3Uri.$"]
    assert _format(statistics, MODEL_ID) == f"{written}/statistics.json"


def test_the_dev_test_and_the_approval_are_recorded_before_production() -> None:
    after_test = walk(CANDIDATE, "TestDevEndpoint", {"approval": {"reason": "looks right"}})
    assert after_test == [
        "TestDevEndpoint",
        "RecordTestResult",
        "RequestApproval",
        "ApprovalNote",
        "ApprovalNoteWithWhy",
        "ApproveCandidate",
        "Approved",
    ]
    quiet = walk(CANDIDATE, "ApprovalNote", {"approval": {"reason": ""}})
    assert quiet[1] == "ApprovalNoteWithoutWhy"
    approve = CANDIDATE["ApproveCandidate"]["Parameters"]
    assert approve["ModelApprovalStatus"] == registry.APPROVED
    assert approve["ApprovalDescription.$"] == "$.registry.decision.text"
    said = CANDIDATE["ApprovalNoteWithWhy"]["Parameters"]["text.$"]
    assert said == "States.Format('approved by {}: {}', $.approval.by, $.approval.reason)"


@pytest.mark.parametrize(
    ("error", "note"),
    [
        ("ApprovalRejected", "RejectFailedCandidateAsDecided"),
        ("ApprovalTimedOut", "RejectFailedCandidateAsDecided"),
        ("DevEndpointFailed", "RejectFailedCandidateOtherwise"),
        ("States.TaskFailed", "RejectFailedCandidateOtherwise"),
    ],
)
def test_a_registered_candidate_that_stops_is_rejected(error: str, note: str) -> None:
    document = {
        "registry": {"model_package_arn": "arn"},
        "failure": {"Error": error, "Cause": "c"},
    }
    path = walk(CANDIDATE, "CandidateFailed", document)
    assert path[:4] == ["CandidateFailed", note, "RejectFailedCandidate", "CandidateFailedStates"]
    reject = CANDIDATE["RejectFailedCandidate"]
    assert reject["Parameters"]["ModelApprovalStatus"] == registry.REJECTED
    assert reject["Parameters"]["ApprovalDescription.$"] == "$.registry.decision.text"
    # a registry that cannot be reached still ends the run with the candidate's own failure
    assert reject["Catch"][0]["ResultPath"] is None
    assert reject["Catch"][0]["Next"] == "CandidateFailedStates"


def test_a_person_or_the_timeout_is_quoted_in_the_rejection() -> None:
    assert CANDIDATE["RejectFailedCandidateAsDecided"]["Parameters"] == {
        "text.$": "$.failure.Cause"
    }
    timeout = CANDIDATE["ApprovalTimedOut"]["Parameters"]
    assert timeout["Error"] == "ApprovalTimedOut"
    assert "no decision within" in timeout["Cause.$"]


def test_an_unregistered_candidate_stops_without_touching_the_registry() -> None:
    path = walk(CANDIDATE, "CandidateFailed", {"failure": {"Error": "CompareFailed"}}, 2)
    assert path[:2] == ["CandidateFailed", "CandidateFailedStates"]


def _reachable(states: Mapping[str, Any], start: str) -> set[str]:
    """States a successful path from ``start`` can enter (Next, Choices, Default)."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        stack += [state.get("Next", ""), state.get("Default", "")]
        stack += [r["Next"] for r in state.get("Choices", [])]
    return seen


def test_every_failure_after_registration_goes_through_the_rejection() -> None:
    """A state added after RegisterCandidate whose Catch bypassed the rejection would leave a
    version pending forever."""
    document = {
        "registry": {"model_package_arn": "arn"},
        "failure": {"Error": "SomethingFailed", "Cause": "why"},
    }
    after = _reachable(CANDIDATE, "CreateDevModel") - {"RejectFailedCandidate"}
    tasks = [n for n in after if CANDIDATE[n]["Type"] == "Task"]
    assert {"RecordTestResult", "RequestApproval", "ApproveCandidate"} <= set(tasks)
    for name in tasks:
        for catcher in CANDIDATE[name]["Catch"]:
            path = walk(CANDIDATE, catcher["Next"], document)
            assert "RejectFailedCandidate" in path, f"{name} fails past the rejection: {path}"
    assert TRAINING["States"]["Candidate"]["ResultSelector"]["registry.$"] == "$[0].registry"


def test_the_promotion_is_of_the_registered_version() -> None:
    deploy_input = TRAINING["States"]["DeployToProduction"]["Parameters"]["Input"]
    assert deploy_input["model_package_arn.$"] == "$.candidate.registry.model_package_arn"
    assert deploy_input["model_id.$"] == "$.model_id"


# ---------------------------------------------------------------------------- deploy
STATES: dict[str, Any] = DEPLOY["States"]
CREATES = {"CreateGreenModel", "CreateGreenEndpointConfig", "CreateGreenEndpoint"}
DELETES = {n for n in STATES if n.startswith("Delete")}


def _release(status: str, model_id: str = MODEL_ID) -> dict[str, Any]:
    return {
        "model_id": MODEL_ID,
        "package": {"status": status, "metadata": {registry.MODEL_ID: model_id}},
    }


def test_the_deploy_machine_starts_from_the_registry() -> None:
    assert DEPLOY["StartAt"] == "ReadRelease"
    read = STATES["ReadRelease"]
    assert read["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:describeModelPackage"
    assert read["Parameters"] == {"ModelPackageName.$": "$.model_package_arn"}
    path = walk(STATES, "ReadRelease", _release(registry.APPROVED), 4)
    assert path[:4] == ["ReadRelease", "ReleaseApproved", "ReleaseIsTheModel", "Configure"]
    green = STATES["CreateGreenModel"]["Parameters"]["PrimaryContainer"]
    assert green == {"ModelPackageName.$": "$.model_package_arn"}


@pytest.mark.parametrize("status", [registry.REJECTED, registry.PENDING])
def test_a_version_that_is_not_approved_is_refused_before_anything_is_made(status: str) -> None:
    document = _release(status) | {"failure": {"Error": "ModelPackageNotApproved"}}
    path = walk(STATES, "ReadRelease", document)
    assert path == [
        "ReadRelease",
        "ReleaseApproved",
        "ReleaseNotApproved",
        "NotifyReleaseRefused",
        "PromotionFailed",
        "PromotionFailedFail",
    ]
    assert not (set(path) & (CREATES | DELETES | {"AcquireReleaseLock"}))
    assert STATES["ReleaseNotApproved"]["Parameters"]["Error"] == "ModelPackageNotApproved"


def test_a_version_of_another_model_is_refused() -> None:
    path = walk(STATES, "ReadRelease", _release(registry.APPROVED, "fare-000000000000"), 4)
    assert path[2:4] == ["ReleaseIsTheModel", "ReleaseNotTheModel"]
    assert STATES["ReleaseNotTheModel"]["Next"] == "NotifyReleaseRefused"


def test_an_existing_green_is_left_alone() -> None:
    """Green is named after the model: when it exists, another release of that model runs or
    it serves now, and deleting it would take that one down."""
    catch = STATES["CreateGreenModel"]["Catch"]
    assert [c["Next"] for c in catch] == ["GreenModelRefused"]
    exists = {"failure": {"Cause": 'Cannot create already existing model "arn:x" (Service: x)'}}
    path = walk(STATES, "GreenModelRefused", exists, 3)
    assert path[:3] == ["GreenModelRefused", "GreenAlreadyExists", "NotifyReleaseRefused"]
    assert not (set(path) & DELETES)
    other = walk(STATES, "GreenModelRefused", {"failure": {"Cause": "ThrottlingException"}}, 2)
    assert other[1] == "DeleteGreenScaling"


def test_the_version_leaving_production_is_read_under_the_lock() -> None:
    locked = walk(STATES, "ReadProduction", {}, 3)
    assert locked[:3] == ["ReadProduction", "ReadChampion", "DescribeStack"]
    assert STATES["ReadChampion"]["Parameters"] == {"Name": "${ChampionParameter}"}
    assert STATES["ReadChampion"]["ResultPath"] == "$.release.champion"


def test_the_registry_records_when_each_version_served() -> None:
    served = {
        "release": {"champion": {"record": {"model_package_arn": "blue"}}},
        "rollback": {"record": {}},
    }
    path = walk(STATES, "RecordChampion", served, 6)
    assert path[:6] == [
        "RecordChampion",
        "MarkReleaseInProduction",
        "RollbackToRecord",
        "MarkRollback",
        "BlueInRegistry",
        "MarkBlueRetired",
    ]
    since = STATES["MarkReleaseInProduction"]["Parameters"]
    assert since["ModelPackageArn.$"] == "$.model_package_arn"
    assert since["CustomerMetadataProperties"] == {
        f"{registry.PRODUCTION_SINCE}.$": "$$.State.EnteredTime"
    }
    until = STATES["MarkBlueRetired"]["Parameters"]
    assert until["ModelPackageArn.$"] == "$.release.champion.record.model_package_arn"
    assert until["CustomerMetadataProperties"] == {
        f"{registry.PRODUCTION_UNTIL}.$": "$$.State.EnteredTime"
    }
    first = walk(STATES, "RecordChampion", {"release": {"champion": {"record": {}}}}, 5)
    assert first[-1] == "StartMonitoringGreen"
    assert "MarkBlueRetired" not in first
    assert "MarkRollback" not in first


def test_a_registry_that_cannot_be_updated_is_the_promotions_warning() -> None:
    """Green serves by then: the registry's bookkeeping never undoes it, and is reported."""
    for name in ("MarkReleaseInProduction", "MarkRollback", "MarkBlueRetired"):
        (catch,) = STATES[name]["Catch"]
        assert catch["ResultPath"] == "$.registry_failure"
        assert catch["Next"] == STATES[name]["Next"]
    path = walk(STATES, "PromotionRecorded", {"registry_failure": {"Error": "x"}}, 3)
    assert path[:3] == ["PromotionRecorded", "RegistryNotUpdated", "ReleaseLockAfterWarnings"]


def test_monitoring_uses_the_baseline_the_version_names() -> None:
    baseline = STATES["StartMonitoringGreen"]["Parameters"]["MonitoringScheduleConfig"][
        "MonitoringJobDefinition"
    ]["BaselineConfig"]
    assert baseline["StatisticsResource"] == {"S3Uri.$": "$.package.baseline.Statistics.S3Uri"}
    assert baseline["ConstraintsResource"] == {"S3Uri.$": "$.package.baseline.Constraints.S3Uri"}
    assert STATES["ReadRelease"]["ResultSelector"]["baseline.$"] == (
        "$.DriftCheckBaselines.ModelDataQuality"
    )


def test_a_rollback_is_told_apart_in_the_notification() -> None:
    path = walk(STATES, "PromotedHow", {"rollback": {}}, 2)
    assert path[:2] == ["PromotedHow", "NotifyRolledBack"]
    message = STATES["NotifyRolledBack"]["Parameters"]["Message.$"]
    assert "$.rollback.requested_by" in message
    assert "$.rollback.reason" in message
    assert walk(STATES, "PromotedHow", {}, 2)[1] == "NotifyPromoted"


def test_a_rollback_records_who_and_why_as_given() -> None:
    """``safe-deploy rollback`` hands the deploy machine the metadata to record."""
    path = walk(STATES, "RollbackToRecord", {"rollback": {"record": {}}}, 2)
    assert path[:2] == ["RollbackToRecord", "MarkRollback"]
    assert STATES["MarkRollback"]["Parameters"]["CustomerMetadataProperties.$"] == (
        "$.rollback.record"
    )
