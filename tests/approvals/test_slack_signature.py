"""Slack interactivity: only requests Slack signed in the last five minutes, with buttons that
carry no secret."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from pipeline_common.slack import (
    SlackRefused,
    SlackWebhookError,
    button_value,
    parse_click,
    post_json,
    request_signature,
    verify_request,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000


def click_body(value: str, user: str = "U2147483697", name: str = "ann") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": name, "team_id": "T0001"},
        "team": {"id": "T0001", "domain": "fares"},
        "actions": [{"action_id": "approve", "value": value, "type": "button"}],
        "response_url": "https://hooks.slack.com/actions/T0001/1/abc",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, timestamp: int = NOW, secret: str = SECRET) -> tuple[str, str]:
    return str(timestamp), request_signature(secret, str(timestamp), body)


def test_slacks_documented_example_signature() -> None:
    """The worked example in Slack's "Verifying requests from Slack" guide."""
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook"
        b"-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977"
        b"00885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d"
        b"10d2c447fce8b6703c"
    )
    assert (
        request_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body)
        == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_a_signed_recent_request_is_accepted() -> None:
    body = click_body(button_value("approve", "abc123"))
    timestamp, signature = signed(body)
    verify_request(body, timestamp, signature, SECRET, NOW + 299)


@pytest.mark.parametrize(
    "change",
    ["wrong secret", "body altered", "timestamp altered", "no signature", "no timestamp"],
)
def test_a_request_slack_did_not_sign_is_refused(change: str) -> None:
    body = click_body(button_value("approve", "abc123"))
    timestamp, signature = signed(
        body, secret="not-the-secret" if change == "wrong secret" else SECRET
    )
    if change == "body altered":
        body = click_body(button_value("approve", "abc124"))
    if change == "timestamp altered":
        timestamp = str(NOW + 1)
    with pytest.raises(SlackRefused) as refused:
        verify_request(
            body,
            None if change == "no timestamp" else timestamp,
            None if change == "no signature" else signature,
            SECRET,
            NOW,
        )
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (str(NOW), "v0=" + "é" * 64),
        (str(NOW), "v0=\ud800"),
        ("".join(chr(0xFF10 + int(d)) for d in str(NOW)), "v0=" + "0" * 64),  # int() reads it
        (str(NOW) + "\x00", "v0=" + "0" * 64),
        ("9" * 5000, "v0=" + "0" * 64),
    ],
    ids=["non-ascii signature", "surrogate", "full-width timestamp", "nul", "huge timestamp"],
)
def test_headers_of_any_shape_are_refused(timestamp: str, signature: str) -> None:
    body = click_body(button_value("approve", "abc123"))
    with pytest.raises(SlackRefused):
        verify_request(body, timestamp, signature, SECRET, NOW)


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_a_stale_or_future_request_is_refused_even_when_correctly_signed(age: int) -> None:
    """A captured callback replayed after the five-minute window."""
    body = click_body(button_value("approve", "abc123"))
    timestamp, signature = signed(body)
    with pytest.raises(SlackRefused, match="Stale"):
        verify_request(body, timestamp, signature, SECRET, NOW + age)


def test_a_click_names_the_approval_the_decision_and_the_slack_user() -> None:
    click = parse_click(click_body(button_value("reject", "abc123"), name="bob"))

    assert (click.action, click.approval_id, click.decides) == ("reject", "abc123", True)
    assert click.approver == "bob (Slack user U2147483697, team T0001)"


def test_the_link_buttons_click_decides_nothing() -> None:
    assert not parse_click(click_body(button_value("review", "abc123"))).decides


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload=not-json",
        urlencode({"payload": json.dumps({"type": "view_submission"})}).encode(),
        click_body("approve"),  # no approval id
        click_body("promote:abc123"),  # not one of ours
    ],
)
def test_other_payloads_are_not_clicks(body: bytes) -> None:
    with pytest.raises(ValueError, match="not an approval button click"):
        parse_click(body)


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "http://exa mple.com/", "file:///etc/hostname", "gopher://x/", "no url"],
)
def test_a_url_slack_cannot_be_reached_at_is_a_webhook_error_that_hides_it(url: str) -> None:
    with pytest.raises(SlackWebhookError) as failed:
        post_json(url, {"text": "hi"}, timeout=1)
    assert url not in str(failed.value)
