"""Fixes for moto 5.2.5 behaviour that differs from AWS in ways the pipeline depends on."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from jsonpath_ng.ext import parse
from moto.awslambda.responses import LambdaResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.moto_api._internal import mock_random
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse
from moto.sts.responses import TokenResponse

from safe_deploy.localcloud.patching import replace

_start_execution = StepFunctionsParserBackend.start_execution
_lambda_invoke = LambdaResponse.invoke
_reflect = BaseExecutionWorkerCommunication._reflect_execution_status
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def start_execution(
    self: Any,
    state_machine_arn: str,
    name: str | None = None,
    execution_input: str | None = None,
    trace_header: str | None = None,
) -> Any:
    """A nameless start gets a generated name (moto builds an ARN ending in ``:None``)."""
    return _start_execution(
        self, state_machine_arn, name or str(mock_random.uuid4()), execution_input, trace_header
    )


def send_task_failure(self: Any) -> Any:
    """Keep the cause (moto drops it)."""
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"),
        error=self._get_param("error"),
        cause=self._get_param("cause"),
    )
    return EmptyResult()


def lambda_invoke(self: Any) -> Any:
    """Honour ``?Qualifier=`` as boto3 sends it (moto reads ``qualifier``)."""
    qualifier = self.querystring.get("Qualifier")
    if qualifier and "qualifier" not in self.querystring:
        self.querystring["qualifier"] = qualifier
    return _lambda_invoke(self)


def reflect_execution_status(self: Any) -> None:
    """Execution output with datetimes in it must not break DescribeExecution."""
    _reflect(self)
    output = self.execution.output
    if output is not None and not isinstance(output, str):
        self.execution.output = json.loads(to_json_str(output))


_INDEFINITE = re.compile(r"\[\s*\*\s*\]|\.\*|\.\.|\[\?|\[[^\]]*[:,][^\]]*\]")
_extract_json = json_path.extract_json


def extract_json(path: str, data: Any) -> Any:
    """JSONPath as Step Functions evaluates it: a definite path (no wildcard, slice, filter or
    union) gives one value, ``$[0].name`` included (moto answers ``[value]`` there)."""
    indefinite = bool(_INDEFINITE.search(path))
    matches = parse(path).find(data)
    if not matches:
        if indefinite:
            return []
        raise json_path.NoSuchJsonPathError(json_path=path, data=data)
    if indefinite:
        return [match.value for match in matches]
    return matches[0].value


def get_caller_identity(self: Any) -> ActionResult:
    """GetCallerIdentity names the principal the local API sees for the same key (sigv4.py's
    ``find_principal``): moto reads only 20-character access key ids, and answers any other key
    with a made-up ``user/moto``; a key moto's IAM does not know is ``user/<access key>`` of the
    local account here, so what a command records as its caller (a rollback's requester) is who
    the API would say decided."""
    found = _CREDENTIAL.search(self.headers.get("Authorization", ""))
    access_key = found.group(1) if found else self.get_access_key()
    user_id, arn, account = self.backend.get_caller_identity(access_key, self.region)
    if arn.endswith(":user/moto"):
        user_id, arn = access_key, f"arn:aws:iam::{account}:user/{access_key}"
    return ActionResult({"UserId": user_id, "Account": account, "Arn": arn})


def install() -> None:
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("moto.stepfunctions.parser") and (
            getattr(module, "extract_json", None) in (_extract_json, extract_json)
        ):
            replace(module, "extract_json", extract_json)  # each importer holds its own name
    replace(StepFunctionsParserBackend, "start_execution", start_execution)
    replace(StepFunctionResponse, "send_task_failure", send_task_failure)
    replace(LambdaResponse, "invoke", lambda_invoke)
    replace(BaseExecutionWorkerCommunication, "_reflect_execution_status", reflect_execution_status)
    replace(TokenResponse, "get_caller_identity", get_caller_identity)
