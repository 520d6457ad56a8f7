"""Decoding stored values: typed decoders (cached per type), and misses for bad data."""

from __future__ import annotations

from typing import Any

import msgspec

from conveyor.cache.options import MISSING
from conveyor.cache.serializer import decode_body

__all__ = ["MISSING", "decode", "decoder_for"]

_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decoder_for(type_: Any) -> msgspec.json.Decoder[Any] | None:
    """A (cached) typed JSON decoder; None for untyped decoding."""
    if type_ is None or type_ is Any:
        return None
    found = _decoders.get(type_)
    if found is None:
        found = _decoders[type_] = msgspec.json.Decoder(type_)
    return found


def decode(body: bytes | memoryview, decoder: msgspec.json.Decoder[Any] | None) -> Any:
    """The value of a stored body, or ``MISSING`` for one of an older shape (a miss)."""
    try:
        return decode_body(body, decoder)
    except msgspec.DecodeError:
        return MISSING
