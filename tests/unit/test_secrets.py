"""shared.secrets against a local gRPC Secret Manager, through the real client."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from google.cloud import secretmanager_v1

from shared import secrets
from shared.config import get_settings
from shared.errors import TransientError
from shared.secrets import SecretConfigError, SecretResolver, secret_version_name
from tests.support.grpc_fakes import FakeSecretManager, secret_manager_client, serve

PINNED = "projects/p1/secrets/db-password/versions/3"
LATEST = "projects/p1/secrets/db-password/versions/latest"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def fake() -> FakeSecretManager:
    return FakeSecretManager(secrets={PINNED: b"pinned-pw", LATEST: b"latest-pw"})


@pytest.fixture()
def client(fake: FakeSecretManager) -> Iterator[secretmanager_v1.SecretManagerServiceClient]:
    with serve(fake.handler()) as address:
        yield secret_manager_client(address)


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def resolver(client, clock) -> SecretResolver:
    return SecretResolver(client=client, max_age_s=60, clock=clock, project="p1")


def test_full_reference_with_version(resolver, fake):
    assert resolver.resolve(f"sm://{PINNED}") == "pinned-pw"
    assert fake.access_calls == [PINNED]


def test_full_reference_without_version_reads_latest(resolver, fake):
    assert resolver.resolve("sm://projects/p1/secrets/db-password") == "latest-pw"
    assert fake.access_calls == [LATEST]


def test_short_reference_uses_configured_project(client, fake, monkeypatch):
    monkeypatch.setenv("RAGLINE_PROJECT", "p1")
    get_settings.cache_clear()
    try:
        assert SecretResolver(client=client).resolve("sm://db-password") == "latest-pw"
    finally:
        get_settings.cache_clear()
    assert fake.access_calls == [LATEST]


def test_plain_values_pass_through_without_a_client():
    resolver = SecretResolver()

    assert resolver.resolve("hunter2") == "hunter2"
    assert resolver.resolve("") == ""
    assert resolver.resolve("postgresql://u:p@/db?host=/tmp") == "postgresql://u:p@/db?host=/tmp"
    assert resolver._client is None  # never created for plain values


def test_cache_hit_within_max_age(resolver, fake, clock):
    assert resolver.resolve(f"sm://{PINNED}") == "pinned-pw"
    clock.now += 59.9
    assert resolver.resolve(f"sm://{PINNED}") == "pinned-pw"

    assert fake.access_calls == [PINNED]


def test_refresh_after_max_age_picks_up_rotation(resolver, fake, clock):
    assert resolver.resolve("sm://projects/p1/secrets/db-password") == "latest-pw"
    fake.secrets[LATEST] = b"rotated-pw"

    clock.now += 30
    assert resolver.resolve("sm://projects/p1/secrets/db-password") == "latest-pw"
    clock.now += 30
    assert resolver.resolve("sm://projects/p1/secrets/db-password") == "rotated-pw"

    assert fake.access_calls == [LATEST, LATEST]


def test_equivalent_references_share_one_cache_entry(resolver, fake):
    resolver.resolve("sm://projects/p1/secrets/db-password")
    resolver.resolve("sm://projects/p1/secrets/db-password/versions/latest")
    resolver.resolve("sm://db-password")

    assert fake.access_calls == [LATEST]


def test_concurrent_cold_reads_fetch_once(resolver, fake):
    results: list[str] = []
    barrier = threading.Barrier(8)

    def read() -> None:
        barrier.wait()
        results.append(resolver.resolve(f"sm://{PINNED}"))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["pinned-pw"] * 8
    assert fake.access_calls == [PINNED]


def test_missing_secret_is_a_clear_config_error(resolver):
    with pytest.raises(SecretConfigError, match="projects/p1/secrets/nope/versions/latest") as info:
        resolver.resolve("sm://nope")

    assert isinstance(info.value, RuntimeError)
    assert "NotFound" in str(info.value)


def test_permission_denied_is_a_config_error(resolver, fake):
    fake.fail_with = grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(SecretConfigError, match="PermissionDenied"):
        resolver.resolve(f"sm://{PINNED}")


def test_unavailable_is_transient_and_not_cached(client, fake, clock):
    resolver = SecretResolver(client=client, clock=clock, timeout_s=0.5)
    fake.fail_with = grpc.StatusCode.UNAVAILABLE

    with pytest.raises(TransientError, match=PINNED):
        resolver.resolve(f"sm://{PINNED}")
    assert len(fake.access_calls) > 1  # retried within the bound before giving up

    fake.fail_with = None
    assert resolver.resolve(f"sm://{PINNED}") == "pinned-pw"


def test_corrupt_payload_is_transient(resolver, fake):
    fake.corrupt_crc = True

    with pytest.raises(TransientError, match="CRC32C"):
        resolver.resolve(f"sm://{PINNED}")


@pytest.mark.parametrize(
    "reference",
    ["sm://", "sm://projects/p", "sm://projects/p/secrets/", "sm://a/b", "sm://x/versions/1"],
)
def test_malformed_references_are_config_errors(reference):
    with pytest.raises(SecretConfigError, match="malformed"):
        secret_version_name(reference, "p1")


def test_module_level_resolve_secret_uses_the_default_resolver(client, fake, monkeypatch):
    monkeypatch.setattr(secrets, "default_resolver", SecretResolver(client=client, project="p1"))

    assert secrets.resolve_secret("plain") == "plain"
    assert secrets.resolve_secret(f"sm://{PINNED}") == "pinned-pw"
    assert fake.access_calls == [PINNED]
