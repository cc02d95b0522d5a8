"""Reading prediction requests is total: rows, or a PayloadError saying what is wrong, whatever
the bytes and headers (any other exception would reach API Gateway as a 502)."""

from __future__ import annotations

import base64
import json
import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_common.payload import (
    CSV,
    JSON,
    MAX_ROWS,
    NotAcceptable,
    PayloadError,
    PayloadTooLarge,
    UnsupportedMediaType,
    answer_type,
    format_predictions,
    parse_rows,
    read_body,
)

MEDIA_TYPES = [
    CSV,
    JSON,
    "text/csv; charset=utf-8",
    'application/json; charset="UTF-8"',
    "TEXT/CSV",
    "application/json;charset=latin-1",
    "text/csv; header=present",
    "application/xml",
    "multipart/form-data; boundary=x",
    "",
    ";",
    "text/csv;;;=",
]
content_types = st.none() | st.sampled_from(MEDIA_TYPES) | st.text(max_size=40)

# JSON documents shaped like requests, and not: rows, bare rows, objects, nesting, odd numbers.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["14.5", "nan", "1e400", " 3 ", "١٢"])
)
json_documents = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["instances", "features", "x"]), inner, max_size=3)
    ),
    max_leaves=30,
)
json_texts = json_documents.map(json.dumps) | st.sampled_from(
    [
        '{"instances": [[1, NaN, 1]]}',
        "[Infinity, 1, 1]",
        "[-Infinity, 1, 1]",
        '{"instances": [[1e400, 1, 1]]}',
        "[" + "9" * 5000 + ", 1, 1]",
        "[1, 1, 1e-400]",
        '{"instances": [[1, 1, 1]], "instances": [[2, 2, 2]]}',
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        "\ufeff[1, 1, 1]",
        "[1, 1, 1",
    ]
)
csv_cell = st.sampled_from(
    ["14.5", "1", "-3", "", " ", "nan", "inf", "-Infinity", "1e400", "9" * 5000, "1_000"]
) | st.text(alphabet=string.printable, max_size=8)
csv_texts = st.lists(st.lists(csv_cell, min_size=1, max_size=5), max_size=6).map(
    lambda rows: "\n".join(",".join(row) for row in rows)
)


def rows_or_refusal(body: bytes | str, content_type: str | None) -> list[list[float]] | None:
    """parse_rows' answer, None for a refusal; anything else it raises fails the test."""
    try:
        rows = parse_rows(body, content_type)
    except PayloadError as exc:
        refusal = exc
    else:
        assert rows
        assert all(len(row) == 3 for row in rows)
        assert all(math.isfinite(v) for row in rows for v in row)
        return rows
    assert 400 <= refusal.status < 500
    return None


@given(body=st.binary(max_size=300), content_type=content_types)
def test_any_bytes_are_rows_or_a_payload_error(body: bytes, content_type: str | None) -> None:
    rows_or_refusal(body, content_type)


@given(body=st.text(max_size=300), content_type=content_types)
def test_any_text_is_rows_or_a_payload_error(body: str, content_type: str | None) -> None:
    rows_or_refusal(body, content_type)  # lone surrogates included


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(body=json_texts)
def test_any_json_is_rows_or_a_payload_error(body: str) -> None:
    rows_or_refusal(body, JSON)


@given(body=csv_texts)
def test_any_csv_is_rows_or_a_payload_error(body: str) -> None:
    rows_or_refusal(body, CSV)


@given(
    rows=st.lists(
        st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=3, max_size=3),
        min_size=1,
        max_size=20,
    ),
    media=st.sampled_from([CSV, JSON]),
)
def test_rows_of_finite_numbers_come_back_as_sent(rows: list[list[float]], media: str) -> None:
    text = (
        "\n".join(",".join(repr(v) for v in row) for row in rows)
        if media == CSV
        else json.dumps({"instances": rows})
    )

    assert parse_rows(text.encode(), media) == rows


KNOWN = {
    "5,000-digit JSON integer": (JSON, "[" + "9" * 5000 + ", 1, 1]", "row 1: duration_minutes"),
    "1e400 in JSON": (JSON, '{"instances": [[1, 1, 1e400]]}', "trip_distance: '1e400' is out"),
    "1e400 in CSV": (CSV, "1,1,1e400", "trip_distance: '1e400' is out of range"),
    "NaN literal": (JSON, "[NaN, 1, 1]", "duration_minutes: NaN is not a finite number"),
    "Infinity literal": (JSON, "[1, 1, -Infinity]", "-Infinity is not a finite number"),
    "nested 100,000 deep": (JSON, "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "objects nested deep": (JSON, '{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    "duplicate keys": (
        JSON,
        '{"instances": [[1, 1, 1]], "instances": [[2, 2, 2]]}',
        "the key 'instances' more than once",
    ),
    "nested lists": (JSON, '{"instances": [[[1, 1, 1]]]}', "expected a list of 3 numbers"),
    "a list for a value": (JSON, "[[1, [1], 1]]", "passenger_count: a list is not a number"),
    "true for a value": (JSON, "[1, true, 1]", "passenger_count: true is not a number"),
    "non-ASCII digits": (CSV, "١٢,1,1", "duration_minutes: '١٢' is not a number"),
    "underscores": (CSV, "1_000,1,1", "'1_000' is not a number"),
    "not UTF-8": (CSV, b"14.5,1,\xff", "body is not UTF-8 text (byte 7)"),
    "lone surrogate": (CSV, "14.5,1,\udc80", "body is not UTF-8 text"),
    "empty": (CSV, b"", "empty body"),
    "blank": (JSON, " \n\t", "empty body"),
    "an empty list": (JSON, "[]", "no rows"),
}


@pytest.mark.parametrize(("media", "body", "message"), KNOWN.values(), ids=KNOWN.keys())
def test_requests_that_once_answered_5xx_are_refused_with_a_reason(
    media: str, body: bytes | str, message: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_rows(body, media)

    assert message in str(caught.value)
    assert caught.value.status == 400
    assert len(str(caught.value)) < 200  # a value is quoted, never pasted whole


def test_numbers_as_people_write_them_are_read() -> None:
    assert parse_rows(" 14.5 ,+1,.5e1\r\n3.,2E0,-0\r\n", CSV) == [
        [14.5, 1.0, 5.0],
        [3.0, 2.0, -0.0],
    ]
    assert parse_rows('[{"features": ["14.5", 1, 3]}]', JSON) == [[14.5, 1.0, 3.0]]
    assert parse_rows(b"\xef\xbb\xbf14.5,1,3.2", "text/csv; charset=UTF-8") == [[14.5, 1.0, 3.2]]
    assert parse_rows("[1, 1, 1e-400]", JSON) == [[1.0, 1.0, 0.0]]  # underflow is just zero


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("application/xml", "content type 'application/xml' is not supported"),
        ("text/csv; charset=latin-1", "charset 'latin-1' is not supported; send UTF-8"),
        ('application/json; charset="utf-16"', "charset 'utf-16' is not supported"),
    ],
)
def test_media_types_and_charsets_the_parser_cannot_read_are_415(
    content_type: str, message: str
) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_rows("1,1,1", content_type)

    assert message in str(caught.value)
    assert caught.value.status == 415


@pytest.mark.parametrize("content_type", [None, "", "TEXT/CSV", "text/csv; charset=us-ascii"])
def test_csv_is_the_default_and_case_does_not_matter(content_type: str | None) -> None:
    assert parse_rows("1,2,3", content_type) == [[1.0, 2.0, 3.0]]


def test_more_rows_than_allowed_are_413() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_rows("1,1,1\n" * (MAX_ROWS + 1), CSV)
    with pytest.raises(PayloadTooLarge):
        parse_rows(json.dumps([[1, 1, 1]] * (MAX_ROWS + 1)), JSON)


# ---------------------------------------------------------------- the body as API Gateway sends it


def test_a_base64_body_is_decoded() -> None:
    assert read_body(base64.b64encode(b"1,1,1").decode(), True, 100) == b"1,1,1"
    assert read_body("1,1,1", False, 100) == b"1,1,1"
    assert read_body(None, False, 100) == b""
    assert read_body(None, True, 100) == b""


@pytest.mark.parametrize("body", ["not base64!", "YWJ", "ü", "YWJjZA", "YW\nJj"])
def test_a_body_marked_base64_that_is_not_is_a_400(body: str) -> None:
    with pytest.raises(PayloadError) as caught:
        read_body(body, True, 100)

    assert caught.value.status == 400
    assert "not valid base64" in str(caught.value)


@pytest.mark.parametrize("base64_encoded", [True, False])
def test_a_body_over_the_limit_is_413(base64_encoded: bool) -> None:
    raw = b"1,1,1\n" * 20
    body = base64.b64encode(raw).decode() if base64_encoded else raw.decode()

    assert read_body(body, base64_encoded, len(raw)) == raw
    with pytest.raises(PayloadTooLarge, match="body over 119 bytes"):
        read_body(body, base64_encoded, len(raw) - 1)


def test_the_size_limit_counts_bytes_not_characters() -> None:
    with pytest.raises(PayloadTooLarge):
        read_body("é" * 60, False, 100)  # 120 bytes


@given(body=st.text(max_size=200), base64_encoded=st.booleans(), limit=st.integers(0, 300))
def test_reading_any_body_is_bytes_or_a_payload_error(
    body: str, base64_encoded: bool, limit: int
) -> None:
    try:
        raw = read_body(body, base64_encoded, limit)
    except PayloadError:
        return
    assert len(raw) <= limit


# ---------------------------------------------------------------- Accept

ACCEPTED = {
    None: CSV,
    "": CSV,
    "*/*": CSV,
    "text/csv": CSV,
    "application/json": JSON,
    "APPLICATION/JSON; charset=utf-8": JSON,
    "application/xml, application/json;q=0.5": JSON,
    "text/csv;q=0.2, application/json": JSON,
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": CSV,
    "application/*": JSON,
    "text/*": CSV,
    "text/csv;q=0, */*": JSON,
    "application/json, text/csv": JSON,
    "text/csv, application/json": CSV,
    "application/json;q=abc": JSON,
}


@pytest.mark.parametrize(("accept", "media"), ACCEPTED.items(), ids=[str(a) for a in ACCEPTED])
def test_the_answer_is_in_the_type_the_caller_prefers(accept: str | None, media: str) -> None:
    assert answer_type(accept) == media
    assert format_predictions([12.5], accept)[1] == media


@pytest.mark.parametrize("accept", ["application/xml", "image/*", "text/csv;q=0", ",", "*/*;q=0"])
def test_an_accept_naming_neither_csv_nor_json_is_406(accept: str) -> None:
    with pytest.raises(NotAcceptable, match="is not supported; ask for text/csv or"):
        answer_type(accept)


@given(accept=st.text(max_size=60) | st.sampled_from(list(map(str, ACCEPTED))))
def test_any_accept_is_a_media_type_or_406(accept: str) -> None:
    try:
        media = answer_type(accept)
    except NotAcceptable:
        media = "406"
    assert media in (CSV, JSON, "406")


def test_predictions_in_json() -> None:
    text, media = format_predictions([12.5, 7.25], JSON)

    assert media == JSON
    assert json.loads(text) == {"predictions": [{"score": 12.5}, {"score": 7.25}]}
