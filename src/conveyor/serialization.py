"""JSON encoding for payloads, results and progress, with size limits.

msgspec does the work: it is the fastest JSON codec for Python and it
encodes dataclasses, msgspec Structs, datetimes, UUIDs and enums natively.
Nothing here ever falls back to pickle.
"""

from __future__ import annotations

from typing import Any

import msgspec

from conveyor.errors import PayloadTooLargeError, SerializationError

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def dumps(value: Any, *, what: str = "value", limit: int | None = None) -> bytes:
    """Encode ``value`` as JSON; raise a typed error if it cannot be or is too large."""
    try:
        data = _encoder.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError, ValueError) as exc:
        raise SerializationError(f"{what} is not JSON-serializable: {exc}") from None
    if limit is not None and len(data) > limit:
        raise PayloadTooLargeError(len(data), limit, what)
    return data


def loads(data: bytes | str) -> Any:
    """Decode JSON produced by :func:`dumps`."""
    return _decoder.decode(data)


def encode_call(args: tuple[Any, ...], kwargs: dict[str, Any], limit: int) -> bytes:
    """Encode a task call as ``[args, kwargs]``."""
    return dumps([args, kwargs], what="job payload", limit=limit)


def decode_call(payload: bytes) -> tuple[list[Any], dict[str, Any]]:
    args, kwargs = _decoder.decode(payload)
    return args, kwargs
