"""Each handler's import sees its function's variables, and no other thread ever does: the
process's environment, which the rest of the local cloud (and urllib, boto3) reads while
handlers import, never changes under them."""

from __future__ import annotations

import os
import threading
import time

from safe_deploy.localcloud.lambdas import function_environment


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
    with function_environment({"SAFE_DEPLOY_TEST_TOPIC": "arn:topic"}):
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
        with function_environment({"SAFE_DEPLOY_TEST_TOPIC": str(n), "SAFE_DEPLOY_OTHER": "x"}):
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
