"""The approval links' key: rotated (the replaced key still verifies as AWSPREVIOUS), revoked (no
stage: it stops verifying at once, whatever a reader cached), and read so that forged signatures
cannot drive Secrets Manager calls."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from pipeline_common.approvals import Tampered, check_link, signature
from pipeline_common.secrets import CURRENT, PREVIOUS, SecretReader, rotate_key

from tests.approvals.conftest import REGION

NOW = 1_800_000_000.0
EXPIRES = int(NOW) + 3600


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def manager(aws: None) -> Any:
    return boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def secret(manager: Any) -> str:
    return str(manager.create_secret(Name="approval-signing", SecretString="first-key")["ARN"])


def stages(manager: Any, arn: str) -> dict[str, list[str]]:
    listed = manager.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return {version: sorted(names) for version, names in listed.items() if names}


def reads_of(reader: SecretReader) -> list[str]:
    reads: list[str] = []
    reader.client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: reads.append(params["VersionStage"]),
    )
    return reads


def opens(reader: SecretReader, arn: str, key: str, approval_id: str = "abc123") -> bool:
    sig = signature(approval_id, EXPIRES, key)
    try:
        check_link(reader, arn, approval_id, str(EXPIRES), sig, NOW)
    except Tampered:
        return False
    return True


def test_a_rotation_makes_a_new_current_key_and_keeps_the_replaced_one_as_previous(
    manager: Any, secret: str
) -> None:
    (first,) = stages(manager, secret)

    done = rotate_key(manager, secret)

    assert stages(manager, secret) == {done.new_version: [CURRENT], first: [PREVIOUS]}
    assert (done.replaced_version, done.dropped_version, done.revoked) == (first, None, False)
    new_key = manager.get_secret_value(SecretId=secret)["SecretString"]
    assert len(new_key) == 64
    assert new_key.isalnum()
    assert new_key not in repr(done)
    again = rotate_key(manager, secret)
    assert again.dropped_version == first  # two rotations: the first key no longer verifies
    assert rotate_key(manager, secret).new_version != again.new_version


def test_revoke_previous_leaves_only_the_new_key(manager: Any, secret: str) -> None:
    (first,) = stages(manager, secret)

    done = rotate_key(manager, secret, revoke_previous=True)

    assert stages(manager, secret) == {done.new_version: [CURRENT]}
    assert (done.replaced_version, done.revoked) == (first, True)


def test_a_cached_key_that_was_revoked_no_longer_verifies(manager: Any, secret: str) -> None:
    reader = SecretReader(manager, cache_seconds=3600)
    assert opens(reader, secret, "first-key")  # cached from here on
    rotate_key(manager, secret)
    assert opens(reader, secret, "first-key")  # AWSPREVIOUS
    rotate_key(manager, secret, revoke_previous=True)

    assert not opens(reader, secret, "first-key")
    assert reader.verifying_keys(secret) == [
        manager.get_secret_value(SecretId=secret)["SecretString"]
    ]


def test_a_key_newer_than_the_cache_verifies_after_one_fresh_read(
    manager: Any, secret: str
) -> None:
    reader = SecretReader(manager, cache_seconds=3600)
    assert opens(reader, secret, "first-key")
    manager.put_secret_value(SecretId=secret, SecretString="second-key")

    assert opens(reader, secret, "second-key")
    assert opens(reader, secret, "first-key")


def test_forged_signatures_fetch_fresh_keys_at_most_once_per_refresh_window(
    manager: Any, secret: str
) -> None:
    clock = Clock()
    reader = SecretReader(manager, cache_seconds=3600, refresh_seconds=30, clock=clock)
    assert opens(reader, secret, "first-key")
    reads = reads_of(reader)

    for n in range(100):
        assert not opens(reader, secret, f"forged-{n}")
    assert sorted(reads) == [CURRENT, PREVIOUS]  # one fresh read of both stages
    clock.now += 29
    assert not opens(reader, secret, "forged")
    assert len(reads) == 2
    clock.now += 2
    assert not opens(reader, secret, "forged")
    assert len(reads) == 4


def test_a_genuine_signature_is_confirmed_by_a_fresh_read_every_time(
    manager: Any, secret: str
) -> None:
    reader = SecretReader(manager, cache_seconds=3600)
    assert opens(reader, secret, "first-key")
    reads = reads_of(reader)

    for _ in range(3):
        assert opens(reader, secret, "first-key")

    assert sorted(reads) == sorted([CURRENT, PREVIOUS] * 3)


def test_a_malformed_link_reads_no_secret(manager: Any, secret: str) -> None:
    reader = SecretReader(manager)
    reads = reads_of(reader)
    for approval_id, expires, sig in (
        ("abc", "tomorrow", "0" * 64),
        ("abc", str(EXPIRES), "not hex"),
        ("a/b", str(EXPIRES), "0" * 64),
    ):
        with pytest.raises(Tampered):
            check_link(reader, secret, approval_id, expires, sig, NOW)
    assert reads == []
