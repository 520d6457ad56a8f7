"""Request context: the request id and the W3C trace context of each request.

The outermost layer (``observe.py``) accepts the caller's ``X-Request-ID``
when it is well-formed (else makes one), returns it on the response, binds
``request_id`` and ``trace_id`` to the structlog context for the request
and sets the request context (``conveyor.jobs.tracing``): every log line,
job and event made while handling it carries them. A ``traceparent`` that
is missing or malformed starts a new trace.
"""

from __future__ import annotations

import os
import re

from starlette.types import Scope

_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""Accepted caller request ids: UUIDs, ULIDs and the like; nothing a log could misread."""
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def accept_request_id(raw: bytes | None, fresh: str | None = None) -> str:
    """The caller's request id if it is well-formed, else ``fresh`` (or a new one)."""
    if raw is not None and _REQUEST_ID.fullmatch(raw):
        return raw.decode("ascii")
    return fresh or os.urandom(16).hex()


def accept_traceparent(raw: bytes | None, fresh: str | None = None) -> tuple[str, str]:
    """``(traceparent, trace_id)``: the caller's if valid (W3C level 1), else a new trace
    (from ``fresh``, 48 random hex digits, if given)."""
    if raw is not None:
        match = _TRACEPARENT.fullmatch(raw.strip())
        if match is not None:
            version, trace_id, parent_id, flags, rest = (
                g.decode("ascii") if g is not None else None for g in match.groups()
            )
            valid = (
                version != "ff"
                and not (version == "00" and rest)
                and trace_id != _ZERO_TRACE
                and parent_id != _ZERO_SPAN
            )
            if valid:
                # A later version is read by its first four fields and passed on as 00.
                return f"00-{trace_id}-{parent_id}-{flags}", str(trace_id)
    fresh = fresh or os.urandom(24).hex()
    return f"00-{fresh[:32]}-{fresh[32:48]}-00", fresh[:32]


def request_id_of(scope: Scope) -> str | None:
    """The request id the context middleware gave this request."""
    state = scope.get("state")
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None
