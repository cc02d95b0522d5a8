"""Each handler's import sees its function's variables, and no other thread ever does: the
process's environment, which the rest of the local cloud (and urllib, boto3) reads while
handlers import, never changes under them."""

from __future__ import annotations

import os
import threading

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
