"""Signed links: only an approval id, an expiry and an HMAC; tampering, expiry and rotation."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from pipeline_common.approvals import (
    PLOT,
    REVIEW,
    Expired,
    Tampered,
    approval_url,
    plot_url,
    signature,
    verify,
)
from pipeline_common.secrets import SecretReader

from tests.approvals.conftest import REGION

KEY = "k" * 64
NOW = 1_800_000_000.0
EXPIRES = int(NOW) + 3600


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_link_carries_only_the_id_the_expiry_and_a_signature() -> None:
    url = approval_url("https://api.example.com/v1/", "abc123", EXPIRES, KEY)

    parts = urlsplit(url)
    assert parts.path == "/v1/approvals/abc123"
    assert set(_query(url)) == {"expires", "sig"}
    assert verify("abc123", _query(url)["expires"], _query(url)["sig"], [KEY], NOW) == EXPIRES


@pytest.mark.parametrize(
    ("approval_id", "expires", "sig"),
    [
        ("abc124", str(EXPIRES), None),  # another approval's id
        ("abc123", str(EXPIRES + 86400), None),  # a later expiry
        ("abc123", str(EXPIRES), "0" * 64),  # a made-up signature
        ("abc123", str(EXPIRES), ""),  # none at all
        ("abc123", "tomorrow", None),  # not a time
    ],
)
def test_a_tampered_link_is_refused_with_403(
    approval_id: str, expires: str, sig: str | None
) -> None:
    genuine = signature("abc123", EXPIRES, KEY)
    with pytest.raises(Tampered) as refused:
        verify(approval_id, expires, genuine if sig is None else sig, [KEY], NOW)
    assert refused.value.status == 403


def test_a_link_signed_with_another_key_is_refused() -> None:
    with pytest.raises(Tampered):
        verify("abc123", EXPIRES, signature("abc123", EXPIRES, "x" * 64), [KEY], NOW)


def test_an_expired_link_is_refused_with_410() -> None:
    sig = signature("abc123", EXPIRES, KEY)
    with pytest.raises(Expired) as refused:
        verify("abc123", EXPIRES, sig, [KEY], EXPIRES + 1)
    assert refused.value.status == 410


def test_the_plot_link_cannot_be_turned_into_a_decision_link() -> None:
    plot = _query(plot_url("https://api.example.com/v1", "abc123", EXPIRES, KEY))

    assert verify("abc123", plot["expires"], plot["sig"], [KEY], NOW, PLOT) == EXPIRES
    with pytest.raises(Tampered):
        verify("abc123", plot["expires"], plot["sig"], [KEY], NOW, REVIEW)


def test_after_a_rotation_the_previous_key_still_verifies_and_the_one_before_does_not(
    aws: None,
) -> None:
    """``aws secretsmanager put-secret-value`` moves AWSCURRENT and keeps AWSPREVIOUS."""
    manager = boto3.client("secretsmanager", region_name=REGION)
    arn = manager.create_secret(Name="approval-signing", SecretString="first-key")["ARN"]
    reader = SecretReader(manager, cache_seconds=0)
    first = signature("abc123", EXPIRES, reader.signing_key(arn))
    assert reader.verifying_keys(arn) == ["first-key"]  # never rotated: no previous version

    manager.put_secret_value(SecretId=arn, SecretString="second-key")
    assert reader.signing_key(arn) == "second-key"
    assert verify("abc123", EXPIRES, first, reader.verifying_keys(arn), NOW) == EXPIRES

    manager.put_secret_value(SecretId=arn, SecretString="third-key")
    with pytest.raises(Tampered):
        verify("abc123", EXPIRES, first, reader.verifying_keys(arn), NOW)


def test_keys_are_cached_until_a_fresh_read_is_asked_for(aws: None) -> None:
    manager = boto3.client("secretsmanager", region_name=REGION)
    arn = manager.create_secret(Name="approval-signing", SecretString="first-key")["ARN"]
    reader = SecretReader(manager, cache_seconds=3600)
    assert reader.signing_key(arn) == "first-key"
    manager.put_secret_value(SecretId=arn, SecretString="second-key")

    assert reader.verifying_keys(arn) == ["first-key"]
    assert reader.verifying_keys(arn, fresh=True) == ["second-key", "first-key"]


def test_a_link_verifies_against_the_current_or_the_previous_key() -> None:
    sig = signature("abc123", EXPIRES, KEY)
    assert verify("abc123", EXPIRES, sig, ["new" * 20, KEY], NOW) == EXPIRES
    assert verify("abc123", EXPIRES, sig, [KEY, "new" * 20], NOW) == EXPIRES
