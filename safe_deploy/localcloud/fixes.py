"""Fixes for moto 5.2.5 behaviour that differs from AWS in ways the pipeline depends on."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import sys
import threading
from types import SimpleNamespace
from typing import Any

from jsonpath_ng.ext import parse
from moto.awslambda.responses import LambdaResponse
from moto.cloudwatch.models import CloudWatchBackend
from moto.core.responses import ActionResult, EmptyResult
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.stepfunctions.exceptions import InvalidToken, ValidationException
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse
from moto.sts.responses import TokenResponse

from safe_deploy.localcloud.patching import replace

_start_execution = StepFunctionsParserBackend.start_execution
_lambda_invoke = LambdaResponse.invoke
_reflect = BaseExecutionWorkerCommunication._reflect_execution_status
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_metric_statistics = CloudWatchBackend.get_metric_statistics


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


HISTORY_PAGE = 100  # GetExecutionHistory's default page; maxResults 0 means it too
HISTORY_PAGE_MAX = 1000
_EXECUTION_DATA = ("input", "inputDetails", "output", "outputDetails")


def get_execution_history(self: Any) -> ActionResult:
    """One page of an execution's events, as Step Functions pages them (moto answers every event,
    oldest first, whatever was asked): ``maxResults`` (default 100, at most 1000, 0 for the
    default), ``reverseOrder`` (newest first), ``nextToken`` (given back while events remain,
    valid only with the arguments it was given for; any other is an InvalidToken) and
    ``includeExecutionData`` (false leaves out each event's input and output)."""
    arn = self._get_param("executionArn")
    size = self._get_param("maxResults") or HISTORY_PAGE
    if not 0 < size <= HISTORY_PAGE_MAX:
        raise ValidationException(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy"
            f" constraint: Member must have value less than or equal to {HISTORY_PAGE_MAX}"
        )
    reverse = bool(self._get_param("reverseOrder"))
    token = self._get_param("nextToken")
    start = _history_position(token, arn, reverse) if token else 0
    events = _events(self.stepfunction_backend.describe_execution(execution_arn=arn))
    if reverse:
        events.reverse()
    page = copy.deepcopy(events[start : start + size])
    if self._get_param("includeExecutionData") is False:
        page = [_without_execution_data(event) for event in page]
    answer: dict[str, Any] = {"events": page}
    if start + size < len(events):
        answer["nextToken"] = _history_token(arn, reverse, start + size)
    return ActionResult(answer)


def _events(execution: Any) -> list[Any]:
    """The execution's events as moto keeps them, not copied (moto copies every event of the
    history for every page it answers, a poll's main cost once histories are long)."""
    worker = execution.exec_worker
    env = worker.env if worker is not None else None
    if env is None:
        return []
    manager = env.event_manager
    with manager._mutex:
        return list(manager._history_event_list)


def _history_token(arn: str, reverse: bool, position: int) -> str:
    text = json.dumps({"arn": arn, "reverse": reverse, "position": position})
    return base64.urlsafe_b64encode(text.encode()).decode()


def _history_position(token: str, arn: str, reverse: bool) -> int:
    try:
        read = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = read["position"]
        matches = read["arn"] == arn and read["reverse"] == reverse
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(f"{token!r} is not a token this API gave") from exc
    if not matches or not isinstance(position, int) or position < 0:
        raise InvalidToken("the token was given for other arguments")
    return position


def _without_execution_data(event: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (
            {k: v for k, v in value.items() if k not in _EXECUTION_DATA}
            if key.endswith("EventDetails") and isinstance(value, dict)
            else value
        )
        for key, value in event.items()
    }


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


def backend_for_host(self: Any, host: str | None) -> Any:
    """The service a request's host names, found once per host: moto lists its own package
    folder and tries its URL patterns one by one for every request, under the lock every request
    takes (about 1.5 ms of it each)."""
    found: dict[str | None, Any] = self.__dict__.setdefault("_backends_by_host", {})
    if host not in found:
        found[host] = _backend_for_host(self, host)
    return found[host]


_parse_trees: dict[str, Any] = {}  # definition -> antlr's parse tree, which nothing changes
_parse_lock = threading.Lock()


def evaluation_entrypoint(self: Any) -> Any:
    """An execution's program, built from its definition's parse tree. moto parses the definition
    again at every execution start, and antlr's parse is most of an execution's start-up; the
    tree is kept per definition, and each execution still gets a program of its own."""
    definition = self._evaluation_details.state_machine_details.definition
    # One at a time: executions started together parse their definition once, and moto's
    # Preprocessor keeps its query-language scopes in a list all its instances share.
    with _parse_lock:
        tree = _parse_trees.get(definition)
        if tree is None:
            _, tree = AmazonStateLanguageParser.parse(definition)  # a bad one raises here
            _parse_trees[definition] = tree
        return Preprocessor().visit(tree)


def get_metric_statistics(
    self: Any,
    namespace: str,
    metric_name: str,
    start_time: Any,
    end_time: Any,
    period: int,
    stats: list[str],
    dimensions: list[dict[str, str]],
    unit: str | None = None,
) -> Any:
    """Statistics of the metric with exactly the dimensions asked for: CloudWatch treats each
    combination of dimensions as a metric of its own (GetMetricStatistics, ``Dimensions``), where
    moto sums every metric that has the ones asked for, or every metric when none are."""
    asked = sorted((d["Name"], d.get("Value")) for d in dimensions or [])
    exact = [
        datum
        for datum in self.get_all_metrics()
        if sorted((d.name, d.value) for d in datum.dimensions) == asked
    ]
    store = SimpleNamespace(get_all_metrics=lambda: exact)  # all moto's method reads of its store
    return _metric_statistics(
        store, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit
    )


def install() -> None:
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("moto.stepfunctions.parser") and (
            getattr(module, "extract_json", None) in (_extract_json, extract_json)
        ):
            replace(module, "extract_json", extract_json)  # each importer holds its own name
    replace(StepFunctionsParserBackend, "start_execution", start_execution)
    replace(StepFunctionResponse, "send_task_failure", send_task_failure)
    replace(StepFunctionResponse, "get_execution_history", get_execution_history)
    replace(LambdaResponse, "invoke", lambda_invoke)
    replace(BaseExecutionWorkerCommunication, "_reflect_execution_status", reflect_execution_status)
    replace(TokenResponse, "get_caller_identity", get_caller_identity)
    replace(DomainDispatcherApplication, "get_backend_for_host", backend_for_host)
    replace(ExecutionWorker, "_get_evaluation_entrypoint", evaluation_entrypoint)
    replace(CloudWatchBackend, "get_metric_statistics", get_metric_statistics)
