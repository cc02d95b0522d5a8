"""Each handler's import and invocation see its function's variables, and no other thread ever
does: the process's environment, which the rest of the local cloud (and urllib, boto3) reads
while handlers run, never changes under them."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from safe_deploy.localcloud.environment import thread_environment
from safe_deploy.localcloud.lambdas import FunctionCode, HandlerHost
from tests.support import PSEUDO_PARAMETERS


def test_a_functions_variables_are_seen_by_its_thread_only() -> None:
    seen_elsewhere: list[str | None] = []
    inside = threading.Event()
    done = threading.Event()

    def other_thread() -> None:
        inside.wait(5)
        seen_elsewhere.append(os.environ.get("SAFE_DEPLOY_TEST_TOPIC"))
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with thread_environment({"SAFE_DEPLOY_TEST_TOPIC": "arn:topic"}):
        assert os.environ["SAFE_DEPLOY_TEST_TOPIC"] == "arn:topic"
        assert "SAFE_DEPLOY_TEST_TOPIC" in dict(os.environ.items())
        inside.set()
        done.wait(5)
    thread.join()
    assert seen_elsewhere == [None]
    assert "SAFE_DEPLOY_TEST_TOPIC" not in os.environ


def test_reading_the_environment_while_handlers_import_never_fails() -> None:
    """The KeyError urllib raised when an import changed os.environ during its iteration."""
    stop, errors = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                for _ in os.environ.items():
                    pass
            except (KeyError, RuntimeError) as error:
                errors.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(2000):
        with thread_environment({"SAFE_DEPLOY_TEST_TOPIC": str(n), "SAFE_DEPLOY_OTHER": "x"}):
            pass
    stop.set()
    thread.join()
    assert errors == []


def _event(path: str, marker: str) -> dict[str, object]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": marker},
        "multiValueHeaders": {"Content-Type": [marker]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": "POST", "stage": "v1"},
        "body": marker,
        "isBase64Encoded": False,
    }


def test_concurrent_invocations_each_read_their_own_request() -> None:
    """Powertools keeps the request being resolved on a class shared by every resolver of the
    process; in the local cloud, where invocations are threads of one process, each one must still
    read its own (a predict request once read the headers of an approval-page request)."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    from safe_deploy.localcloud import lambdas, patching

    lambdas._invocations_keep_their_own_event()
    try:
        predict, approvals = APIGatewayRestResolver(), APIGatewayRestResolver()
        mixed: list[tuple[str, str]] = []
        start = threading.Barrier(2)

        def route(app: APIGatewayRestResolver) -> dict[str, str]:
            seen = app.current_event.headers.get("content-type") or ""
            time.sleep(0.001)  # let the other thread resolve its request meanwhile
            again = app.current_event.body or ""
            if seen != again:
                mixed.append((seen, again))
            return {"seen": seen}

        predict.post("/predict")(lambda: route(predict))
        approvals.post("/approvals")(lambda: route(approvals))

        def hammer(app: APIGatewayRestResolver, path: str, marker: str) -> None:
            start.wait()
            for _ in range(200):
                app.resolve(_event(path, marker), None)  # type: ignore[arg-type]

        threads = [
            threading.Thread(target=hammer, args=(predict, "/predict", "text/csv")),
            threading.Thread(target=hammer, args=(approvals, "/approvals", "image/png")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert mixed == []
    finally:
        patching.restore_all()


def _host(tmp_path: Path) -> HandlerHost:
    from safe_deploy.localcloud.metrics import MetricStore
    from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

    folder = tmp_path / "function"
    folder.mkdir()
    (folder / "app.py").write_text(
        "import os\n"
        "def lambda_handler(event, context):\n"
        "    return {name: os.environ.get(name) for name in event['names']}\n"
    )
    settings = LocalSettings(project_root=tmp_path, workdir=tmp_path / "work")
    host = HandlerHost(settings, MetricStore(), ActivityFeed(), {"SAFE_DEPLOY_TEST_GLOBAL": "g"})
    host.register("reader", FunctionCode("Reader", folder, "app.lambda_handler", 128, 3))
    return host


def _function(variables: dict[str, str]) -> SimpleNamespace:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:reader"
    return SimpleNamespace(
        function_name="reader", version="1", function_arn=arn, environment_vars=variables
    )


def test_a_handler_reads_its_variables_when_invoked_not_only_when_imported(
    tmp_path: Path,
) -> None:
    """Powertools reads the metric namespace when a metric is emitted: an invocation sees its
    function's variables and the template's globals, whatever the process's environment holds
    at that moment (another thread may be clearing and restoring it, as ``patch.dict`` does)."""
    host = _host(tmp_path)
    fn = _function({"SAFE_DEPLOY_TEST_NAMESPACE": "SafeDeploy"})
    names = {"names": ["SAFE_DEPLOY_TEST_NAMESPACE", "SAFE_DEPLOY_TEST_GLOBAL"]}
    assert "SAFE_DEPLOY_TEST_GLOBAL" not in os.environ
    try:
        for _ in range(3):  # the first imports the handler, the others only call it
            payload, error = host.run(fn, names, alias=None)
            assert error is None
            assert json.loads(payload) == {
                "SAFE_DEPLOY_TEST_NAMESPACE": "SafeDeploy",
                "SAFE_DEPLOY_TEST_GLOBAL": "g",
            }
        assert "SAFE_DEPLOY_TEST_NAMESPACE" not in os.environ
    finally:
        from safe_deploy.localcloud import patching

        patching.restore_all()


def test_a_stack_update_never_hides_the_environment_from_running_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CloudFormation engine transforms a template during ``sam deploy`` while handlers serve
    requests; it once set the translator's region with ``mock.patch.dict(os.environ)``, whose exit
    clears the process's environment before refilling it, and a predict request found no metric
    namespace (a 502 during a release)."""
    from safe_deploy.localcloud import patching
    from safe_deploy.localcloud.cloudformation.template import process

    monkeypatch.setenv("SAFE_DEPLOY_TEST_NAMESPACE", "SafeDeploy")
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Runtime": "python3.11", "Handler": "app.h", "CodeUri": "s3://b/k"},
            }
        },
    }
    stop, missing = threading.Event(), []

    def handler_thread() -> None:
        while not stop.is_set():
            if os.environ.get("SAFE_DEPLOY_TEST_NAMESPACE") is None:
                missing.append(1)

    thread = threading.Thread(target=handler_thread)
    thread.start()
    try:
        for _ in range(30):
            assert "AWS::Lambda::Function" in str(process(template, {}, PSEUDO_PARAMETERS))
    finally:
        stop.set()
        thread.join()
        patching.restore_all()
    assert missing == []
