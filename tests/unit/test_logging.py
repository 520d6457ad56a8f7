"""Secrets never reach a log line."""

from __future__ import annotations

from typing import Any

from conveyor.observability.logging import mask_secrets, mask_text


def _masked(**fields: Any) -> dict[str, Any]:
    return dict(mask_secrets(None, "info", dict(fields)))


def test_secret_keys_are_masked() -> None:
    out = _masked(event="connect", password="hunter2", api_key="k-123", token="t", user="ann")
    assert out == {
        "event": "connect",
        "password": "***",
        "api_key": "***",
        "token": "***",
        "user": "ann",
    }


def test_urls_and_inline_secrets_in_text_are_masked() -> None:
    out = _masked(event="failed to reach redis://app:hunter2@cache:6379/0 with token=abc123")
    assert "hunter2" not in out["event"] and "abc123" not in out["event"]
    assert "redis://app:***@cache:6379/0" in out["event"]


def test_nested_values_are_masked() -> None:
    out = _masked(event="x", headers={"Authorization": "Bearer abc.def", "accept": "json"})
    assert out["headers"] == {"Authorization": "***", "accept": "json"}
    assert mask_text("Authorization: Bearer abc.def") == "Authorization: ***"


def test_prefixed_secret_keys_in_text_are_masked() -> None:
    text = mask_text("access_token=abc client_secret: xyz db_password=p")
    assert text == "access_token=*** client_secret: *** db_password=***"


def test_a_password_containing_at_signs_is_masked_whole() -> None:
    from conveyor.config import mask_url

    assert mask_url("redis://:p@ss@host/0") == "redis://:***@host/0"
