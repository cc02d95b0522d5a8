"""The local API Gateway converts payloads by the API's binary media types as a REST API with
Lambda proxy integration does: requests by ``Content-Type``, responses by the first media type of
``Accept``, ``*`` in an entry as a wildcard, the request's own value taken literally.

Sources: AWS, "Binary media types for REST APIs in API Gateway", "Content type conversions in API
Gateway" and "Return binary media from a Lambda proxy integration in API Gateway".
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from safe_deploy.localcloud import api as api_module
from safe_deploy.localcloud.api import LocalApi, Route, is_binary, template_media_types
from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from tests.support_template import load_sam, transformed

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
PNG_TEXT = base64.b64encode(PNG).decode()
# What browsers send for an <img> (Chromium is the one the browser test drives).
IMG_ACCEPT = {
    "chromium": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "firefox": "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
    "safari": "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
}
CLIENT_ACCEPT = "*/*"  # curl's and requests' default


class FakeLambda:
    """Moto's Lambda backend as the API sees it: records each event, answers ``answer``."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.events: list[dict[str, Any]] = []

    def invoke(
        self,
        function_name: str,
        qualifier: str | None,
        body: str,
        headers: dict[str, str],
        response_headers: dict[str, str],
    ) -> str:
        self.events.append(json.loads(body))
        return json.dumps(self.answer)


@pytest.fixture
def gateway(tmp_path: Any) -> LocalApi:
    api = LocalApi(LocalSettings(tmp_path, tmp_path), ActivityFeed(), MetricStore())
    api.routes.append(Route("ANY", "/files/{name}", "files", None, "NONE", "test-api", "v1"))
    return api


def call(
    gateway: LocalApi,
    monkeypatch: pytest.MonkeyPatch,
    answer: dict[str, Any],
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes = b"",
) -> tuple[Any, FakeLambda]:
    function = FakeLambda(answer)
    monkeypatch.setattr(api_module, "lambda_backend", lambda account, region: function)
    environ = EnvironBuilder(
        path="/v1/files/plot.png", method=method, headers=list((headers or {}).items()), data=data
    ).get_environ()
    return gateway.handle(Request(environ)), function


def png_answer(base64_encoded: bool = True) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "image/png"},
        "body": PNG_TEXT,
        "isBase64Encoded": base64_encoded,
    }


# ---------------------------------------------------------------- responses: the Accept header
def test_a_base64_response_reaches_a_client_accepting_a_binary_type_as_bytes(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.binary_media_types = ["image/png"]
    response, _ = call(gateway, monkeypatch, png_answer(), headers={"Accept": "image/png"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.get_data() == PNG


@pytest.mark.parametrize("accept", ["text/html", "application/json", None])
def test_a_base64_response_reaches_any_other_client_as_the_base64_text(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch, accept: str | None
) -> None:
    gateway.binary_media_types = ["image/png"]
    headers = {"Accept": accept} if accept else {}
    response, _ = call(gateway, monkeypatch, png_answer(), headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"  # as the function said, yet text
    assert response.get_data() == PNG_TEXT.encode()


def test_a_base64_response_is_text_when_the_api_has_no_binary_media_types(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    response, _ = call(gateway, monkeypatch, png_answer(), headers={"Accept": "image/png"})
    assert response.get_data() == PNG_TEXT.encode()


def test_a_response_not_flagged_base64_passes_as_written_even_to_a_binary_accept(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.binary_media_types = ["*/*"]
    response, _ = call(
        gateway, monkeypatch, png_answer(base64_encoded=False), headers={"Accept": "image/png"}
    )
    assert response.get_data() == PNG_TEXT.encode()


@pytest.mark.parametrize(
    ("accept", "binary"),
    [
        ("image/png,text/html", True),
        ("image/png;q=0.5, text/html", True),  # parameters do not count
        ("IMAGE/PNG", True),  # media types are case-insensitive
        ("text/html,image/png", False),  # only the first media type is honoured
        ("text/html;q=0.1,image/png;q=1.0", False),  # whatever the q-values say
    ],
)
def test_only_the_first_media_type_of_accept_counts(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch, accept: str, binary: bool
) -> None:
    gateway.binary_media_types = ["image/png"]
    response, _ = call(gateway, monkeypatch, png_answer(), headers={"Accept": accept})
    assert response.get_data() == (PNG if binary else PNG_TEXT.encode())


def test_a_flagged_body_that_is_not_base64_is_a_500(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.binary_media_types = ["image/png"]
    answer = {**png_answer(), "body": "not base64!"}
    response, _ = call(gateway, monkeypatch, answer, headers={"Accept": "image/png"})
    assert response.status_code == 500
    assert json.loads(response.get_data()) == {"message": "Internal server error"}
    # ... which only shows when a conversion is asked for
    response, _ = call(gateway, monkeypatch, answer, headers={"Accept": "text/html"})
    assert (response.status_code, response.get_data()) == (200, b"not base64!")


# ---------------------------------------------------------------- wildcards
@pytest.mark.parametrize(
    ("header", "types", "binary"),
    [
        ("image/avif", ["image/*"], True),
        ("image/png", ["image/*"], True),
        ("text/html", ["image/*"], False),
        ("application/json", ["*/*"], True),
        ("text/html", ["*/*"], True),
        # the header's value is taken literally: a wildcard in it is no wildcard
        ("*/*", ["image/png"], False),
        ("*/*", ["image/*"], False),
        ("image/*", ["image/png"], False),
        ("image/*", ["image/*"], True),
        ("*/*", ["*/*"], True),
        # no media type, nothing to match
        ("", ["*/*"], False),
        (None, ["*/*"], False),
        ("garbage", ["*/*"], False),
    ],
)
def test_a_wildcard_in_a_binary_media_type_covers_a_type_or_all(
    header: str | None, types: list[str], binary: bool
) -> None:
    assert is_binary(header, types) is binary


def test_a_wildcard_binary_type_converts_a_response_for_a_matching_accept(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.binary_media_types = ["image/*"]
    response, _ = call(gateway, monkeypatch, png_answer(), headers={"Accept": "image/webp"})
    assert response.get_data() == PNG
    response, _ = call(gateway, monkeypatch, png_answer(), headers={"Accept": CLIENT_ACCEPT})
    assert response.get_data() == PNG_TEXT.encode()


# ---------------------------------------------------------------- requests: the Content-Type header
def test_a_request_body_of_a_binary_type_reaches_lambda_base64_encoded(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.binary_media_types = ["image/png"]
    _, function = call(
        gateway,
        monkeypatch,
        {"statusCode": 204},
        method="PUT",
        headers={"Content-Type": "image/png"},
        data=PNG,
    )
    (event,) = function.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == PNG


@pytest.mark.parametrize(
    ("content_type", "types"),
    [
        ("text/csv", ["image/png"]),
        ("application/octet-stream", ["image/png"]),  # binary only if the API says so
        ("application/octet-stream", []),
        (None, ["image/*"]),
    ],
)
def test_a_request_body_of_any_other_type_reaches_lambda_as_text(
    gateway: LocalApi,
    monkeypatch: pytest.MonkeyPatch,
    content_type: str | None,
    types: list[str],
) -> None:
    gateway.binary_media_types = types
    headers = {"Content-Type": content_type} if content_type else {}
    data = "1.5,2,3\nné,€\n".encode()
    _, function = call(gateway, monkeypatch, {"statusCode": 204}, "POST", headers, data)
    (event,) = function.events
    assert event["isBase64Encoded"] is False
    assert event["body"] == data.decode()


def test_bytes_that_are_not_utf8_in_a_text_body_are_not_passed_on(
    gateway: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.binary_media_types = ["image/png"]
    headers = {"Content-Type": "application/octet-stream"}
    _, function = call(gateway, monkeypatch, {"statusCode": 204}, "POST", headers, PNG)
    (event,) = function.events
    assert event["isBase64Encoded"] is False
    assert event["body"] == PNG.decode("utf-8", errors="replace")
    assert base64.b64encode(event["body"].encode()) != PNG_TEXT.encode()  # the bytes are lost


def test_no_body_reaches_lambda_as_none(gateway: LocalApi, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway.binary_media_types = ["*/*"]
    _, function = call(gateway, monkeypatch, {"statusCode": 204})
    (event,) = function.events
    assert (event["body"], event["isBase64Encoded"]) == (None, False)


# ---------------------------------------------------------------- this project's API
def _plot_api_types() -> list[str]:
    """The ``BinaryMediaTypes`` of the API that serves the approval page's plot, as written."""
    resources = load_sam()["Resources"]
    for resource in resources.values():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            props = event.get("Properties", {})
            if event["Type"] == "Api" and props.get("Path", "").endswith("/plot.png"):
                api = resources[props["RestApiId"]["Ref"]]["Properties"]
                return list(api.get("BinaryMediaTypes", []))
    raise AssertionError("no API route serves the approval plot")


def test_template_media_types_are_decoded_as_sam_decodes_them() -> None:
    written = _plot_api_types()
    assert template_media_types(["image~1png", "*~1*", "application~1vnd.a+json"]) == [
        "image/png",
        "*/*",
        "application/vnd.a+json",
    ]
    rest_apis = [
        r["Properties"]
        for r in transformed()["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::RestApi"
    ]
    swagger_types = [
        props["Body"]["x-amazon-apigateway-binary-media-types"]
        for props in rest_apis
        if "x-amazon-apigateway-binary-media-types" in props.get("Body", {})
    ]
    assert template_media_types(written) in swagger_types


@pytest.mark.parametrize("browser", sorted(IMG_ACCEPT))
def test_with_image_png_alone_a_browser_would_get_the_plot_as_base64_text(browser: str) -> None:
    assert not is_binary(IMG_ACCEPT[browser], ["image/png"])


@pytest.mark.parametrize("accept", [*IMG_ACCEPT.values(), CLIENT_ACCEPT, "image/png"])
def test_with_the_templates_types_browsers_and_clients_get_the_plot_as_bytes(accept: str) -> None:
    assert is_binary(accept, template_media_types(_plot_api_types()))
