"""The release comparison: the endpoint live serves against the production record, and whether it
is up (what ``safe-deploy status`` warns about and the release_check function alarms on)."""

from __future__ import annotations

import shlex

import pytest
from pipeline_common.layout import NO_ENDPOINT
from pipeline_common.release import (
    SERVING_PARAMETER,
    LiveVersion,
    ReleaseState,
    Verdict,
    check_release,
    endpoint_served,
)

BLUE = "fare-2e71d0c94a5b-prod"
GREEN = "fare-9b5c86e7fd15-prod"
STACK = "safe-deploy"
PARAMETER = "CFN-ProductionEndpointParameter-Q3ZK8W1M2N4B"
STACK_PARAMETERS = (SERVING_PARAMETER, "NamePrefix", "DeploymentType", "NotificationEmail")


def state(
    *live: LiveVersion,
    record: str,
    endpoints: dict[str, str | None] | None = None,
    stack_status: str = "UPDATE_COMPLETE",
) -> ReleaseState:
    return ReleaseState(
        stack_name=STACK,
        stack_status=stack_status,
        production_parameter=PARAMETER,
        production_record=record,
        live=live,
        endpoints=endpoints or {},
        stack_parameters=STACK_PARAMETERS,
    )


def only(version: str, endpoint_name: str) -> LiveVersion:
    return LiveVersion(version, 1.0, endpoint_name)


def _stack_update(command: str) -> dict[str, str]:
    """The parameters of an ``aws cloudformation update-stack`` command."""
    words = shlex.split(command)
    assert words[:3] == ["aws", "cloudformation", "update-stack"]
    assert words[words.index("--stack-name") + 1] == STACK
    assert "--use-previous-template" in words
    assert words[words.index("--capabilities") + 1 : words.index("--parameters")] == [
        "CAPABILITY_IAM",
        "CAPABILITY_AUTO_EXPAND",
    ]
    values = words[words.index("--parameters") + 1 :]
    pairs = (v.removeprefix("ParameterKey=").partition(",") for v in values)
    return {key: value for key, _, value in pairs}


def _serving(endpoint: str) -> dict[str, str]:
    """What a stack update that serves ``endpoint`` sends: every other parameter kept."""
    return {SERVING_PARAMETER: f"ParameterValue={endpoint}"} | {
        name: "UsePreviousValue=true" for name in STACK_PARAMETERS if name != SERVING_PARAMETER
    }


def _recording(endpoint: str) -> str:
    return f"aws ssm put-parameter --name {PARAMETER} --type String --overwrite --value {endpoint}"


# ---------------------------------------------------------------------------- consistent
def test_live_serving_the_recorded_endpoint_that_is_up_is_consistent() -> None:
    check = check_release(state(only("7", GREEN), record=GREEN, endpoints={GREEN: "InService"}))

    assert check.verdict is Verdict.CONSISTENT
    assert not check.mismatch
    assert (check.serving, check.record, check.problems, check.actions) == (GREEN, GREEN, (), ())
    assert "version 7" in check.summary
    assert GREEN in check.summary


def test_a_version_with_no_endpoint_of_its_own_serves_the_record() -> None:
    """A code deploy before any promotion publishes versions with an empty ENDPOINT_NAME."""
    check = check_release(state(only("3", ""), record=BLUE, endpoints={BLUE: "InService"}))

    assert check.verdict is Verdict.CONSISTENT
    assert check.serving == BLUE


def test_no_model_yet_is_consistent() -> None:
    check = check_release(state(only("1", ""), record=NO_ENDPOINT))

    assert check.verdict is Verdict.CONSISTENT
    assert check.summary == "no model has been promoted yet"
    assert check.serving is None


@pytest.mark.parametrize("status", ["Updating", "SystemUpdating"])
def test_an_endpoint_that_auto_scaling_is_updating_still_serves(status: str) -> None:
    check = check_release(state(only("7", GREEN), record=GREEN, endpoints={GREEN: status}))

    assert check.verdict is Verdict.CONSISTENT


# ---------------------------------------------------------------------------- mismatch
def test_live_serving_another_endpoint_than_the_record_is_a_mismatch() -> None:
    """A promotion that stopped after its stack update, before it wrote the record."""
    check = check_release(
        state(
            only("8", GREEN),
            record=BLUE,
            endpoints={GREEN: "InService", BLUE: "InService"},
        )
    )

    assert check.verdict is Verdict.MISMATCH
    assert check.mismatch
    (problem,) = check.problems
    assert problem == (
        f"live (version 8) serves {GREEN}, but the production record {PARAMETER} names {BLUE}"
    )
    keep, revert = check.actions
    assert keep.what.startswith(f"If {GREEN} is the model you want in production, record it.")
    assert f"retiring {BLUE}" in keep.what
    assert keep.commands == (_recording(GREEN),)
    assert revert.what.startswith(f"Or serve {BLUE} again")
    (update,) = revert.commands
    assert _stack_update(update) == _serving(BLUE)
    assert check.as_dict()["before_acting"].startswith("Act once no promotion is running")


def test_a_first_promotion_that_never_recorded_its_endpoint_is_a_mismatch() -> None:
    check = check_release(
        state(only("2", GREEN), record=NO_ENDPOINT, endpoints={GREEN: "InService"})
    )

    assert check.mismatch
    assert check.problems == (
        f"live (version 2) serves {GREEN}, but the production record {PARAMETER} names "
        "no endpoint (none)",
    )
    (keep,) = check.actions  # nothing else to serve: only recording green is offered
    assert keep.commands == (_recording(GREEN),)
    assert "retiring" not in keep.what


def test_live_serving_a_deleted_endpoint_is_a_mismatch_even_when_the_record_agrees() -> None:
    check = check_release(state(only("5", ""), record=BLUE, endpoints={BLUE: None}))

    assert check.mismatch
    assert check.problems == (
        f"{BLUE}, the endpoint live (version 5) serves, does not exist: predictions fail",
    )
    (fix,) = check.actions
    assert fix.what.startswith("No endpoint the release names is up. Promote a new model")
    # live's version has no endpoint of its own: recording another one is enough
    assert fix.commands == (_recording("ENDPOINT"),)


def test_live_bound_to_a_deleted_endpoint_with_nothing_up_is_told_to_bind_another() -> None:
    check = check_release(state(only("6", GREEN), record=GREEN, endpoints={GREEN: None}))

    (fix,) = check.actions
    assert "then bind live to it (in that order" in fix.what
    record, bind = fix.commands  # the pre-traffic hook refuses an endpoint the record does not name
    assert record == _recording("ENDPOINT")
    assert _stack_update(bind) == _serving("ENDPOINT")


def test_live_bound_to_a_deleted_endpoint_is_told_to_serve_the_record_again() -> None:
    """The green endpoint was deleted after CloudFormation bound live to it; blue, which the
    record still names, is up."""
    check = check_release(
        state(only("9", GREEN), record=BLUE, endpoints={GREEN: None, BLUE: "InService"})
    )

    assert check.mismatch
    assert check.problems == (
        f"live (version 9) serves {GREEN}, but the production record {PARAMETER} names {BLUE}",
        f"{GREEN}, the endpoint live (version 9) serves, does not exist: predictions fail",
    )
    (fix,) = check.actions
    assert fix.what.startswith(f"Serve {BLUE} again (InService, the production record's")
    (update,) = fix.commands
    assert _stack_update(update) == _serving(BLUE)


@pytest.mark.parametrize("status", ["Failed", "OutOfService", "Deleting", "Creating"])
def test_an_endpoint_that_cannot_answer_is_a_mismatch(status: str) -> None:
    check = check_release(state(only("4", GREEN), record=GREEN, endpoints={GREEN: status}))

    assert check.mismatch
    assert check.problems == (
        f"{GREEN}, the endpoint live (version 4) serves, is {status}, not InService: "
        "predictions fail",
    )


# ---------------------------------------------------------------------------- nothing to compare
def test_mid_canary_with_routing_weights_is_not_a_mismatch() -> None:
    """CodeDeploy sends 10% to green while the record still names blue: a release under way."""
    check = check_release(
        state(
            LiveVersion("7", 0.9, BLUE),
            LiveVersion("8", 0.1, GREEN),
            record=BLUE,
            endpoints={BLUE: "InService", GREEN: "InService"},
            stack_status="UPDATE_COMPLETE",
        )
    )

    assert check.verdict is Verdict.IN_PROGRESS
    assert not check.mismatch
    assert check.summary == (
        f"live is shifting traffic: version 7 (90%) serves {BLUE}, version 8 (10%) serves {GREEN}"
    )


@pytest.mark.parametrize(
    "status",
    ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"],
)
def test_nothing_is_compared_while_the_stack_changes(status: str) -> None:
    check = check_release(
        state(only("8", GREEN), record=BLUE, endpoints={GREEN: None}, stack_status=status)
    )

    assert check.verdict is Verdict.IN_PROGRESS
    assert not check.mismatch
    assert check.summary.startswith(f"stack {STACK} is {status}")


def test_the_endpoint_a_version_serves_is_the_predict_functions_own_rule() -> None:
    assert endpoint_served(GREEN, BLUE) == GREEN
    assert endpoint_served("", BLUE) == BLUE
    assert endpoint_served(BLUE, BLUE) == BLUE
    assert endpoint_served(GREEN, NO_ENDPOINT) == GREEN
    assert endpoint_served("", NO_ENDPOINT) is None
