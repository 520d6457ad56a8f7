"""How a cached value is stored: a small binary header, then JSON (never pickle).

The stored bytes are the same in every tier and every store, so a value
written by one process decodes the same in any other:

    0x01 | flags (1) | fresh_until (8, ms) | expires_at (8, ms) | compute_ms (4) | body
    (sizes in bytes, little-endian)

``fresh_until`` is when the value stops being fresh (0: never); past it the
value is *stale* and served only to callers that allow it, until
``expires_at`` (0: never; the store expires the key then too). Carrying the
expiry in the value lets a process that reads it set its local copy's
expiry without asking the store for the key's TTL. ``compute_ms`` is how
long the factory took, which probabilistic early refresh scales by.
``flags`` bit 0 says the body is zlib compressed (bodies over
``compress_threshold`` bytes are). A body without the
header (first byte not 0x01) is plain JSON: that is what ``incr`` leaves.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

import msgspec

from conveyor.errors import PayloadTooLargeError, SerializationError

MAGIC: Final = 1
FLAG_ZLIB: Final = 1
_HEADER = struct.Struct("<BBqqI")
HEADER_SIZE: Final = _HEADER.size
_MAX_COMPUTE_MS = 2**32 - 1

_encoder = msgspec.json.Encoder()
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


class Envelope(msgspec.Struct, frozen=True):
    """A stored value's metadata and (still encoded) body."""

    body: bytes | memoryview
    fresh_until: int
    expires_at: int
    compute_ms: int


class Serializer:
    """Encode values as JSON with a header; compress large bodies; decode, typed or not."""

    def __init__(
        self,
        *,
        compress_threshold: int | None = 4096,
        compress_level: int = 1,
        max_bytes: int | None = None,
    ) -> None:
        self.compress_threshold = compress_threshold
        self.compress_level = compress_level
        self.max_bytes = max_bytes

    def dumps(
        self, value: Any, *, fresh_until: int = 0, expires_at: int = 0, compute_ms: int = 0
    ) -> bytes:
        """Encode ``value``; a typed :class:`SerializationError` if it is not JSON."""
        try:
            body = _encoder.encode(value)
        except (TypeError, msgspec.EncodeError, OverflowError, ValueError) as exc:
            raise SerializationError(
                f"cache value of type {type(value).__name__} is not JSON-serializable: {exc}"
            ) from None
        flags = 0
        if self.compress_threshold is not None and len(body) > self.compress_threshold:
            body = zlib.compress(body, self.compress_level)
            flags = FLAG_ZLIB
        if self.max_bytes is not None and len(body) > self.max_bytes:
            raise PayloadTooLargeError(len(body), self.max_bytes, "cache value")
        compute_ms = min(compute_ms, _MAX_COMPUTE_MS)
        header = _HEADER.pack(MAGIC, flags, fresh_until, expires_at, compute_ms)
        return header + body


def encode_plain(value: Any) -> bytes:
    """JSON without a header (counters)."""
    return _encoder.encode(value)


def open_envelope(data: bytes) -> Envelope:
    """Split stored bytes into header fields and the (decompressed) body."""
    if not data or data[0] != MAGIC:
        return Envelope(data, 0, 0, 0)
    _, flags, fresh_until, expires_at, compute_ms = _HEADER.unpack_from(data)
    body: bytes | memoryview = memoryview(data)[HEADER_SIZE:]
    if flags & FLAG_ZLIB:
        body = zlib.decompress(body)
    return Envelope(body, fresh_until, expires_at, compute_ms)


def has_header(data: bytes) -> bool:
    return bool(data) and data[0] == MAGIC


def with_expiry(data: bytes, fresh_until: int, expires_at: int) -> bytes:
    """The same stored value with new freshness and expiry times."""
    _, flags, _, _, compute_ms = _HEADER.unpack_from(data)
    header = _HEADER.pack(MAGIC, flags, fresh_until, expires_at, compute_ms)
    return header + data[HEADER_SIZE:]


def decode_body(body: bytes | memoryview, decoder: msgspec.json.Decoder[Any] | None) -> Any:
    """Decode a body; raises ``msgspec.DecodeError`` (incl. ValidationError) on mismatch."""
    return (decoder or _any_decoder).decode(body)


def loads(data: bytes, decoder: msgspec.json.Decoder[Any] | None = None) -> Any:
    """Decode stored bytes to a value (typed when ``decoder`` is given)."""
    return decode_body(open_envelope(data).body, decoder)
