"""The release state the pipeline keeps in SSM: which endpoint serves production."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.utilities import parameters


def production_reader(parameter_name: str, max_age_seconds: float = 0) -> Callable[[], str]:
    """A function that reads the production endpoint's name (cached ``max_age_seconds``)."""

    def production_endpoint() -> str:
        return str(parameters.get_parameter(parameter_name, max_age=int(max_age_seconds)))

    return production_endpoint
