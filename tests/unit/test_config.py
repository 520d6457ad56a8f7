"""Settings are validated at construction, every problem listed at once."""

from __future__ import annotations

import pytest

from conveyor import ConfigError, Conveyor
from conveyor.config import load_settings, mask_url


def test_every_problem_is_listed_in_one_error() -> None:
    with pytest.raises(ConfigError) as raised:
        Conveyor("ftp://u:hunter2@host/x", lease_seconds=-1, concurrency=0, bogus=1)
    problems = raised.value.problems
    assert len(problems) == 4
    text = str(raised.value)
    assert "lease_seconds" in text and "concurrency" in text and "bogus" in text
    assert "unknown store scheme 'ftp'" in text
    assert "hunter2" not in text


def test_cross_field_rules_are_checked() -> None:
    with pytest.raises(ConfigError, match="sweep_interval"):
        load_settings("memory://", {"lease_seconds": 1, "sweep_interval": 5})


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_CONCURRENCY", "7")
    monkeypatch.setenv("CONVEYOR_URL", "memory://")
    settings = load_settings(None, {})
    assert settings.concurrency == 7
    assert settings.store_url == "memory://"


def test_default_store_is_embedded_sqlite() -> None:
    settings = load_settings(None, {})
    assert settings.store_url == "sqlite:///.conveyor/conveyor.db"


def test_redis_urls_are_accepted_without_connecting() -> None:
    for url in (
        "redis://localhost:6379/0",
        "rediss://user:pw@cache.internal:6380/2",
        "redis+cluster://10.0.0.1:7000",
    ):
        app = Conveyor(url)
        assert "pw" not in repr(app)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host", "redis://user:***@host"),
        ("rediss://user@host", "rediss://user@host"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_passwords_in_urls_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_settings_repr_never_shows_the_password() -> None:
    settings = load_settings("memory://", {})
    assert "memory://" in repr(settings)
    secret = load_settings(None, {"url": "sqlite:///x.db"})
    assert "url=" in repr(secret)
