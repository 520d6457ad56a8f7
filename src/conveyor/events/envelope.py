"""Events on the wire: the envelope, its metadata, and typed payloads.

An event is a msgspec Struct, a dataclass or a pydantic model. It travels
inside an envelope (JSON) that carries its metadata; the delivery job's
payload is the envelope. The event's type name is the class attribute
``__event_type__`` if it has one, else the class name; its schema version is
``__event_version__`` (default 1).
"""

from __future__ import annotations

import dataclasses
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from conveyor.errors import BadInputError, NonRetryableError

GROUP_QUEUE_PREFIX = "events."
"""Each subscriber group is the job queue ``events.<group>``."""


def group_queue(group: str) -> str:
    return GROUP_QUEUE_PREFIX + group


def delivery_task(group: str, type_name: str) -> str:
    """The task that delivers events of ``type_name`` to ``group`` (a publisher names it too)."""
    return f"{GROUP_QUEUE_PREFIX}{group}:{type_name}"


class EventMeta(msgspec.Struct, frozen=True):
    """What travels with every event.

    ``attempt`` and ``group`` are filled in when a handler receives it.
    """

    event_id: str
    type: str
    occurred_at: datetime
    source: str
    version: int = 1
    trace_id: str | None = None
    request_id: str | None = None
    attempt: int = 0
    group: str | None = None


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """The stored form: metadata plus the event's JSON data."""

    event_id: str
    type: str
    occurred_at: int
    source: str
    data: Any
    version: int = 1
    trace_id: str | None = None
    request_id: str | None = None

    def meta(self, attempt: int = 0, group: str | None = None) -> EventMeta:
        return EventMeta(
            event_id=self.event_id,
            type=self.type,
            occurred_at=datetime.fromtimestamp(self.occurred_at / 1000, UTC),
            source=self.source,
            version=self.version,
            trace_id=self.trace_id,
            request_id=self.request_id,
            attempt=attempt,
            group=group,
        )


envelope_decoder = msgspec.json.Decoder(Envelope)

_names: dict[type, tuple[str, int]] = {}

current_delivery: ContextVar[EventMeta | None] = ContextVar("conveyor_event", default=None)
"""The event a handler in this context is processing (its trace flows on to what it publishes)."""


def event_type(cls: type) -> tuple[str, int]:
    """``(type name, schema version)`` of an event class; checks that it can be an event."""
    found = _names.get(cls)
    if found is None:
        if not _is_event_class(cls):
            raise BadInputError(
                f"{cls.__qualname__} cannot be an event: use a msgspec Struct,"
                " a dataclass or a pydantic model"
            )
        name = cls.__dict__.get("__event_type__", cls.__name__)
        version = cls.__dict__.get("__event_version__", 1)
        if not isinstance(name, str) or not name or not isinstance(version, int):
            raise BadInputError(f"{cls.__qualname__}: __event_type__ must be a non-empty str")
        found = _names[cls] = (name, version)
    return found


def _is_event_class(cls: type) -> bool:
    if issubclass(cls, msgspec.Struct) or dataclasses.is_dataclass(cls):
        return True
    return hasattr(cls, "model_validate") and hasattr(cls, "model_dump")  # pydantic v2


def to_data(event: object) -> Any:
    """The event as something msgspec encodes (pydantic models are dumped first)."""
    if isinstance(event, msgspec.Struct) or dataclasses.is_dataclass(event):
        return event
    dump = getattr(event, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    raise BadInputError(
        f"{type(event).__qualname__} cannot be an event: use a msgspec Struct,"
        " a dataclass or a pydantic model"
    )


def from_data(cls: type[Any], data: Any) -> Any:
    """Rebuild a typed event; data that does not fit the class is a non-retryable error."""
    try:
        validate = getattr(cls, "model_validate", None)
        if validate is not None and not issubclass(cls, msgspec.Struct):
            return validate(data)
        return msgspec.convert(data, cls)
    except Exception as exc:
        raise NonRetryableError(f"event data does not fit {cls.__qualname__}: {exc}") from None


def new_envelope(
    event: object,
    *,
    source: str,
    event_id: str | None,
    trace_id: str | None,
    request_id: str | None,
    now: int,
) -> Envelope:
    name, version = event_type(type(event))
    parent = current_delivery.get()
    bound = structlog.contextvars.get_contextvars()
    if trace_id is None:
        trace_id = bound.get("trace_id") or (parent.trace_id if parent else None)
    if request_id is None:
        request_id = bound.get("request_id") or (parent.request_id if parent else None)
    return Envelope(
        event_id=event_id or str(uuid.uuid4()),
        type=name,
        occurred_at=now,
        source=source,
        data=to_data(event),
        version=version,
        trace_id=None if trace_id is None else str(trace_id),
        request_id=None if request_id is None else str(request_id),
    )
