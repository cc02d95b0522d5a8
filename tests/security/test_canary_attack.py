"""An attack on the open routes during a canary does not stop the release.

Anyone on the internet can reach the approval pages, the Slack route and ``/health``. During the
second model's canary, an attacker floods them: binary bodies to the approval page (which once
made the approval function raise), malformed Slack payloads, and more concurrent requests than
the approval API's reserved concurrency (one, here), which API Gateway answers with 500s. The
API-wide 5xx alarm sees them, and fires; it only notifies. The rollback alarms describe the
candidate, so the release completes, and the clients' requests are all answered.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from safe_deploy import ops
from safe_deploy.demo import Demo
from safe_deploy.localcloud.cloud import LocalCloud
from tests.e2e.conftest import live_version_endpoint, running_demo

# A few attackers are enough to exceed a reservation of one (so API Gateway throttles some of
# their requests into 500s) while leaving the two cores of a test machine to the clients.
ATTACKERS = 4
RESERVATION = {"ApprovalApiReservedConcurrency": "1"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("canary-attack"), RESERVATION) as story:
        yield story


class Attacker:
    """Unauthenticated requests to every open route, from many threads, until stopped."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.statuses: Counter[int] = Counter()
        self.answered_at: list[float] = []  # time.time() of each answer
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(ATTACKERS)
        self.started = threading.Event()

    def _requests(self, session: requests.Session, n: int) -> requests.Response:
        approval = f"{self.base_url}/approvals/{uuid.uuid4().hex}"
        kind = n % 4
        if kind == 0:  # a binary body to the page: the request that used to answer 502
            return session.post(
                approval, data=os.urandom(512), headers={"Content-Type": "image/png"}
            )
        if kind == 1:  # a Slack payload that is not one, unsigned
            return session.post(
                f"{self.base_url}/slack/interactions",
                data=b"payload=%7B%22type%22%3A%5B%5D%7D\xff",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        if kind == 2:
            return session.get(f"{self.base_url}/health")
        return session.get(approval, params={"expires": "1", "sig": "0" * 64})

    def _run(self) -> None:
        session, n = requests.Session(), 0
        while not self._stop.is_set():
            n += 1
            try:
                status = self._requests(session, n).status_code
            except requests.RequestException:
                status = 0
            with self._lock:
                self.statuses[status] += 1
                self.answered_at.append(time.time())
            self._stop.wait(0.01)

    def start_with_the_canary(self, cloud: LocalCloud) -> None:
        """Attack from the moment the next canary shifts traffic (the approver has decided:
        flooding the approval page before would throttle the approver too, see
        docs/security.md)."""
        shifts = len(cloud.feed.find("codedeploy", "10% of live"))

        def wait_then_attack() -> None:
            while not self._stop.is_set():
                if len(cloud.feed.find("codedeploy", "10% of live")) > shifts:
                    self.started.set()
                    for _ in range(ATTACKERS):
                        self._pool.submit(self._run)
                    return
                self._stop.wait(0.05)

        threading.Thread(target=wait_then_attack, daemon=True).start()

    def stop(self) -> Counter[int]:
        self._stop.set()
        self._pool.shutdown(wait=True)
        return self.statuses


def test_an_attack_on_the_open_routes_during_a_canary_does_not_stop_it(
    demo: Demo, tmp_path: Path
) -> None:
    first = demo.first_model()
    base_url = demo.target.api_url
    attacker = Attacker(base_url)
    attacker.start_with_the_canary(demo.cloud)
    try:
        second = demo.canary()  # raises StageFailed if the release does not complete
    finally:
        statuses = attacker.stop()

    assert attacker.started.is_set()
    assert second.model != first.model
    _, bound, routing = live_version_endpoint(demo)
    assert bound == f"{second.model}-prod"
    assert not routing.get("AdditionalVersionWeights")
    assert ops.release(demo.target).production_endpoint == f"{second.model}-prod"
    assert second.failed == 0
    assert demo.cloud.feed.find("codedeploy", "AfterAllowTraffic: Succeeded")
    assert not demo.cloud.feed.find("codedeploy", "rolled back")

    # the attack was real: hundreds of requests from the 10% shift until after the 100% one, all
    # refused, some of them throttled into 5xx by the approval API's reservation, and the
    # API-wide 5xx alarm fired (it only notifies)
    assert sum(statuses.values()) > 200, statuses
    ten = demo.cloud.feed.find("codedeploy", "10% of live")[-1].at
    full = demo.cloud.feed.find("codedeploy", "100% of live")[-1].at
    answered = attacker.answered_at
    assert answered[0] < ten + 5, (ten, answered[:3])
    assert answered[-1] > full, (full, answered[-3:])
    assert 0 not in statuses, statuses
    assert {s for s in statuses if s < 500} <= {200, 400, 401, 403, 404, 405, 410, 413, 415}
    assert statuses[500] > 0, statuses
    assert demo.cloud.feed.find("cloudwatch", "Api5xxAlarm is ALARM")
    # everything else about the API: each 5xx was API Gateway's throttle, not our code's
    assert set(statuses) - {200, 400, 401, 403, 404, 405, 410, 413, 415, 500} == set()
