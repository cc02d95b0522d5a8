"""approval_api on moto, driven by the sample events ``sam local invoke`` takes: a reviewer opens
the link (``approval_api.json``), posts the page's form (``approval_api_decide.json``), an
operator runs ``safe-deploy reject`` (``approval_api_operator.json``).

Each sample is pointed at the approval that ``events/request_approval.json`` asks for (the same
run, stored as the request function stores it) and signed with the stack's own key. Step
Functions is answered at the wire (:class:`StepFunctions`); everything else is moto."""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from pipeline_common.approval_request import evidence_from
from pipeline_common.approvals import REVIEW, Approval, ApprovalStore, signature
from pipeline_common.events import ApprovalRequestEvent

from tests.handlers.support import REGION, Cloud, FakeLambdaContext, Loader, load_event

PLOT_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
SEND_TASK = ("SendTaskSuccess", "SendTaskFailure")
STATES_URL = f"https://states.{REGION}.amazonaws.com/"


class StepFunctions:
    """Step Functions for the handler's own client: botocore builds and validates each
    ``SendTask*`` request as for AWS, then this records it and answers, by default as for a task
    that still waits. moto cannot answer here: until a local cloud has run in the process it takes
    any token, and from then on its interpreter refuses every token no execution of its issued."""

    def __init__(self, app: ModuleType) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer: tuple[int, dict[str, Any]] = (200, {})
        events = app.SFN.meta.events
        for operation in SEND_TASK:
            events.register(f"provide-client-params.sfn.{operation}", self._recorder(operation))
            events.register(f"before-call.sfn.{operation}", self._respond)

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer every call from now on with this AWS error."""
        self.answer = (status, {"Error": {"Code": code, "Message": message}})

    def _recorder(self, operation: str) -> Callable[..., None]:
        return lambda params, **_: self.calls.append((operation, dict(params)))

    def _respond(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        status, parsed = self.answer
        return AWSResponse(STATES_URL, status, HTTPHeaders(), None), parsed

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


# ---------------------------------------------------------------- the stack, with one request
def requested(cloud: Cloud) -> tuple[Approval, str]:
    """The approval ``events/request_approval.json`` asks for, stored as the request function
    stores it, its plot in the artifact bucket; and the task token it keeps."""
    request = ApprovalRequestEvent.model_validate(load_event("request_approval"))
    evidence = evidence_from(request)
    cloud.s3.put_object(Bucket=cloud.ref("ArtifactBucket"), Key=evidence["plot_key"], Body=PLOT_PNG)
    table = boto3.resource("dynamodb", region_name=REGION).Table(cloud.ref("ApprovalsTable"))
    approval = ApprovalStore(table).create(
        execution_arn=request.execution_arn,
        model_id=request.model_id,
        task_token=request.task_token,
        evidence=evidence,
        timeout_seconds=request.timeout_seconds,
        now=time.time(),
    )
    return approval, request.task_token


def stored(cloud: Cloud, approval_id: str) -> dict[str, Any]:
    item = cloud.dynamodb.get_item(
        TableName=cloud.ref("ApprovalsTable"), Key={"approval_id": {"S": approval_id}}
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def signed_link(cloud: Cloud, approval: Approval) -> dict[str, str]:
    """``expires`` and ``sig`` as the request function signs them, with the stack's key."""
    secret = cloud.ref("ApprovalSigningSecret")
    key = cloud.secrets.get_secret_value(SecretId=secret)["SecretString"]
    expires = approval.expires_at
    return {"expires": str(expires), "sig": signature(approval.approval_id, expires, key, REVIEW)}


# ---------------------------------------------------------------- the samples, pointed at it
def for_approval(sample: str, approval_id: str, path: str = "") -> dict[str, Any]:
    """A page sample whose approval id (and, if given, path under it) is ``approval_id``'s."""
    event = load_event(sample)
    route = f"/approvals/{approval_id}{path}"
    event["path"] = route
    event["resource"] = event["requestContext"]["resourcePath"] = (
        f"/approvals/{{approval_id}}{path}"
    )
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{route}"
    event["pathParameters"] = {"approval_id": approval_id}
    return event


def with_query(event: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    event["queryStringParameters"] = dict(query)
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return event


def with_form(event: dict[str, Any], fields: dict[str, str], base64_body: bool) -> dict[str, Any]:
    """The sample's form with ``fields`` replaced; base64-encoded as API Gateway delivers it to
    this API (its binary media types are ``*/*``), or plain, as the sample writes it."""
    form = dict(parse_qsl(event["body"], keep_blank_values=True)) | fields
    body = urlencode(form)
    event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    event["isBase64Encoded"] = base64_body
    return event


def decide_sample(cloud: Cloud, approval: Approval, base64_body: bool = True) -> dict[str, Any]:
    """``approval_api_decide.json``: its decision, name and reason, with this approval's link."""
    event = for_approval("approval_api_decide", approval.approval_id)
    return with_form(event, signed_link(cloud, approval), base64_body)


def header(answer: dict[str, Any], name: str) -> str:
    """A header of a REST proxy answer (Powertools writes them as ``multiValueHeaders``)."""
    for key, values in (answer.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return ", ".join(values)
    return ""


def heading(answer: dict[str, Any]) -> str:
    found = re.search(r"<h1>(.*?)</h1>", answer["body"])
    return html.unescape(found.group(1)) if found else ""


def assert_page(answer: dict[str, Any], status: int) -> None:
    """An HTML page with the headers that keep the signed link out of caches and Referers."""
    assert answer["statusCode"] == status, answer
    assert header(answer, "Content-Type").startswith("text/html")
    assert header(answer, "Cache-Control") == "no-store"
    assert header(answer, "Referrer-Policy") == "no-referrer"
    assert header(answer, "Content-Security-Policy").startswith("default-src 'none'")


# ---------------------------------------------------------------- the page
def test_the_reviewers_link_shows_the_evidence_and_its_plot_and_decides_nothing(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("approval_api")
    sfn = StepFunctions(app)
    approval, token = requested(cloud)
    link = signed_link(cloud, approval)

    shown = app.lambda_handler(
        with_query(for_approval("approval_api", approval.approval_id), link), context
    )

    assert_page(shown, 200)
    assert heading(shown) == "Promote model fare-9b5c86e7fd15 to production?"
    assert "<td>4.812</td>" in shown["body"]  # the validation RMSE the gate saw
    assert f'action="/v1/approvals/{approval.approval_id}"' in shown["body"]
    assert token not in json.dumps(shown)
    assert stored(cloud, approval.approval_id)["status"] == "PENDING"
    assert sfn.calls == []

    img = re.search(r'<img id=plot src="([^"]+)"', shown["body"])
    assert img is not None
    src = urlsplit(html.unescape(img[1]))
    assert src.path == f"/v1/approvals/{approval.approval_id}/plot.png"
    plot = for_approval("approval_api", approval.approval_id, "/plot.png")
    image = app.lambda_handler(with_query(plot, dict(parse_qsl(src.query))), context)

    assert image["statusCode"] == 200
    assert header(image, "Content-Type") == "image/png"
    assert base64.b64decode(image["body"]) == PLOT_PNG


def test_a_link_not_signed_with_the_stacks_key_gets_a_403_page(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    """The sample as it is: what ``sam local invoke -e events/approval_api.json`` shows, since
    its signature was made with a key the stack does not hold."""
    app = load_handler("approval_api")

    answer = app.lambda_handler(load_event("approval_api"), context)

    assert_page(answer, 403)
    assert heading(answer) == "This link has been altered"


@pytest.mark.parametrize("base64_body", [True, False], ids=["from API Gateway", "as written"])
def test_the_posted_form_approves_once_and_tells_step_functions(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    base64_body: bool,
) -> None:
    app = load_handler("approval_api")
    sfn = StepFunctions(app)
    approval, token = requested(cloud)
    posted = decide_sample(cloud, approval, base64_body)

    decided = app.lambda_handler(posted, context)
    replayed = app.lambda_handler(posted, context)

    assert_page(decided, 200)
    assert heading(decided) == "Model fare-9b5c86e7fd15 was approved"
    record = stored(cloud, approval.approval_id)
    assert record["status"] == "APPROVED"
    assert record["decided_by"] == "Dana Reviewer"  # the name typed in the sample's form
    assert record["decided_via"] == "approval page"
    assert record["reason"] == "RMSE better than production"
    assert sfn.operations() == ["SendTaskSuccess"]
    (_, sent), *_ = sfn.calls
    assert sent["taskToken"] == token
    assert json.loads(sent["output"]) == {
        "approved": True,
        "approval_id": approval.approval_id,
        "by": "Dana Reviewer",
        "at": int(record["decided_at"]),
        "reason": "RMSE better than production",
    }
    assert_page(replayed, 409)
    assert "Dana Reviewer already approved model fare-9b5c86e7fd15" in replayed["body"]
    logs = capsys.readouterr().out
    decisions = [json.loads(line) for line in logs.splitlines() if '"approval decided"' in line]
    assert [(d["by"], d["via"]) for d in decisions] == [("Dana Reviewer", "approval page")]
    assert token not in logs


def test_a_decision_that_comes_after_the_run_stopped_waiting_expires_the_approval(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("approval_api")
    sfn = StepFunctions(app)
    sfn.refuse(400, "TaskTimedOut", "Task Timed Out")  # the approval task's timeout fired
    approval, _ = requested(cloud)

    late = app.lambda_handler(decide_sample(cloud, approval), context)

    assert_page(late, 410)
    assert heading(late) == "This approval has expired"
    record = stored(cloud, approval.approval_id)
    assert record["status"] == "EXPIRED"  # never "approved" for a run that was rejected
    assert record["reason"] == "Dana Reviewer approved it after the pipeline had stopped waiting"
    shown = app.lambda_handler(
        with_query(
            for_approval("approval_api", approval.approval_id), signed_link(cloud, approval)
        ),
        context,
    )
    assert_page(shown, 410)


def test_a_decision_step_functions_did_not_hear_is_undone_and_can_be_made_again(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("approval_api")
    sfn = StepFunctions(app)
    sfn.refuse(500, "ServiceUnavailable", "Service Unavailable")
    approval, token = requested(cloud)
    posted = decide_sample(cloud, approval)

    with pytest.raises(ClientError, match="ServiceUnavailable"):  # a Lambda error: a 502
        app.lambda_handler(posted, context)

    record = stored(cloud, approval.approval_id)
    assert record["status"] == "PENDING"
    assert "decided_by" not in record
    sfn.answer = (200, {})  # Step Functions is back
    assert app.lambda_handler(posted, context)["statusCode"] == 200
    assert stored(cloud, approval.approval_id)["status"] == "APPROVED"
    assert [sent["taskToken"] for _, sent in sfn.calls] == [token, token]


# ---------------------------------------------------------------- the operator route
def test_an_operator_rejects_the_run_it_names_as_its_iam_principal(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("approval_api")
    sfn = StepFunctions(app)
    approval, token = requested(cloud)  # the run the operator sample names

    answer = app.lambda_handler(load_event("approval_api_operator"), context)

    principal = "arn:aws:iam::123456789012:user/fare-client"  # the sample's SigV4 caller
    assert answer["statusCode"] == 200, answer
    assert header(answer, "Content-Type") == "application/json"
    body = json.loads(answer["body"])
    assert (body["approval_id"], body["status"], body["decided_by"]) == (
        approval.approval_id,
        "REJECTED",
        principal,
    )
    record = stored(cloud, approval.approval_id)
    assert (record["status"], record["decided_via"], record["reason"]) == (
        "REJECTED",
        "operator API (IAM)",
        "holding releases during the audit",
    )
    assert sfn.calls == [
        (
            "SendTaskFailure",
            {
                "taskToken": token,
                "error": "ApprovalRejected",
                "cause": f"rejected by {principal}: holding releases during the audit",
            },
        )
    ]


def test_an_operator_decision_for_a_run_nobody_asked_about_gets_a_404(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("approval_api")
    sfn = StepFunctions(app)

    answer = app.lambda_handler(load_event("approval_api_operator"), context)

    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["message"].startswith("no approval request for arn:aws:")
    assert sfn.calls == []
