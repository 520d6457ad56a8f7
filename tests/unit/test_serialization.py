"""Payloads are JSON, never pickle; limits raise typed errors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from conveyor import PayloadTooLargeError, SerializationError, serialization


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_round_trip_of_common_types() -> None:
    data = serialization.encode_call(
        (1, "a", [1.5]), {"when": datetime(2026, 1, 1, tzinfo=UTC)}, 1000
    )
    args, kwargs = serialization.decode_call(data)
    assert args == [1, "a", [1.5]]
    assert kwargs == {"when": "2026-01-01T00:00:00Z"}
    assert serialization.loads(serialization.dumps(Point(1, 2))) == {"x": 1, "y": 2}


def test_unserializable_values_raise_a_clear_error() -> None:
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        serialization.dumps({"f": open}, what="job payload")


def test_size_limit() -> None:
    with pytest.raises(PayloadTooLargeError) as raised:
        serialization.dumps("x" * 100, limit=50)
    assert raised.value.size == 102
    assert raised.value.limit == 50
