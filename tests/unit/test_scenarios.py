"""The failure scenarios are one registry: the README's table is the registry's, and every
scenario says how its run must end."""

from __future__ import annotations

from pathlib import Path

import pytest

from safe_deploy.scenarios import (
    REGISTRY,
    SCENARIO_PARAMETERS,
    SCENARIOS,
    Decision,
    Scenario,
    readme_table,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_the_registrys() -> None:
    lines = README.read_text().splitlines()
    start = lines.index("| scenario | what goes wrong | how it ends |")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))

    assert lines[start:end] == readme_table()


def test_the_table_has_a_row_per_scenario_in_the_registrys_order() -> None:
    rows = readme_table()[2:]
    assert [row.split("`")[1] for row in rows] == list(SCENARIOS)


@pytest.mark.parametrize("scenario", REGISTRY, ids=lambda s: s.name)
def test_each_scenario_says_how_it_ends(scenario: Scenario) -> None:
    assert scenario.error
    assert scenario.cause_holds
    assert scenario.description
    if scenario.fault is not None:
        assert scenario.decision is Decision.APPROVE, "a fault in green needs a promotion"
    if scenario.fault_after_pre_traffic:
        assert scenario.fault is not None


def test_only_the_scenarios_that_need_a_stack_of_their_own_change_its_parameters() -> None:
    assert SCENARIO_PARAMETERS == {"approval-times-out": {"ApprovalTimeoutSeconds": "600"}}
