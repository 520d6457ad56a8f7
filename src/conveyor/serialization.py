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


def clip(text: str, limit: int, *, tail: bool = False) -> str:
    """``text`` cut so that, as a JSON string, it takes at most ``limit`` bytes.

    Counted in encoded bytes, not characters: a character can take up to six
    (``"\\u0001"``). ``tail`` keeps the end instead of the start.
    """
    size = len(_encoder.encode(text)) - 2
    while size > limit:
        keep = len(text) * limit // size
        text = text[-keep:] if tail and keep else text[:keep]
        size = len(_encoder.encode(text)) - 2
    return text


def loads(data: bytes | str) -> Any:
    """Decode JSON produced by :func:`dumps`."""
    return _decoder.decode(data)


def encode_call(args: tuple[Any, ...], kwargs: dict[str, Any], limit: int) -> bytes:
    """Encode a task call as ``[args, kwargs]``."""
    return dumps([args, kwargs], what="job payload", limit=limit)


def decode_call(payload: bytes) -> tuple[list[Any], dict[str, Any]]:
    args, kwargs = _decoder.decode(payload)
    return args, kwargs
