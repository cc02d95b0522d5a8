"""Waits for people keep their length in a local cloud a person drives (``local up``); every other
wait follows the time scale. The README's session depends on it: after `approve`, the person has
the post-traffic hook's whole wait to send client requests, not 240 s x 0.02 = 4.8 s."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from safe_deploy.localcloud.cloudformation.resources import Handlers
from safe_deploy.localcloud.state import LocalSettings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_WAIT = "240"  # template.yaml: PostTrafficHookFunction's CAPTURE_WAIT_SECONDS


def handlers(tmp_path: Path, human_pace: bool) -> Handlers:
    settings = LocalSettings(ROOT, tmp_path, time_scale=0.02, human_pace=human_pace)
    api: Any = SimpleNamespace(local_routes={}, origin="http://127.0.0.1:1")
    return Handlers(settings, host=Any, api=api, alarms=Any, feed=Any)  # type: ignore[arg-type]


def test_the_template_still_sets_the_hooks_wait_this_test_reads() -> None:
    assert f'CAPTURE_WAIT_SECONDS: "{TEMPLATE_WAIT}"' in (ROOT / "template.yaml").read_text()


@pytest.mark.parametrize(("human_pace", "expected"), [(True, "240"), (False, "30")])
def test_the_hooks_wait_for_client_requests_is_as_long_as_on_aws_at_human_pace(
    tmp_path: Path, human_pace: bool, expected: str
) -> None:
    assert handlers(tmp_path, human_pace).local_value("CAPTURE_WAIT_SECONDS", TEMPLATE_WAIT) == (
        expected
    )


def test_a_programs_clients_get_at_least_the_floor_and_never_more_than_on_aws(
    tmp_path: Path,
) -> None:
    from safe_deploy.localcloud.state import CLIENT_WAIT_FLOOR

    robot = LocalSettings(ROOT, tmp_path, time_scale=0.02)
    assert robot.for_people(240) == CLIENT_WAIT_FLOOR  # 4.8 s scaled: too short on a busy box
    assert robot.for_people(10) == 10  # a wait shorter than the floor is not lengthened
    assert LocalSettings(ROOT, tmp_path, time_scale=1.0).for_people(240) == 240


def test_machine_waits_follow_the_time_scale_even_at_human_pace(tmp_path: Path) -> None:
    local = handlers(tmp_path, human_pace=True)
    assert local.local_value("CAPTURE_POLL_SECONDS", "15") == "0.3"
    assert local.settings.scaled(120) == pytest.approx(2.4)  # an endpoint's start-up


def test_codedeploy_waits_for_a_hook_as_long_as_the_hook_may_wait_for_people(
    tmp_path: Path,
) -> None:
    from safe_deploy.localcloud.codedeploy import HOOK_TIMEOUT_SECONDS

    people = LocalSettings(ROOT, tmp_path, time_scale=0.02, human_pace=True)
    assert people.for_people(HOOK_TIMEOUT_SECONDS) > float(TEMPLATE_WAIT)
    robot = LocalSettings(ROOT, tmp_path, time_scale=0.02)
    assert robot.for_people(HOOK_TIMEOUT_SECONDS) == pytest.approx(72.0)
