"""Server-Sent Events for the pages, fed by the job-event stream (``app.jobs.events``).

Each event is sent as ``event: job`` with its kind, job, queue and (for
progress) the value and its percentage; its ``id`` is the subscription's
cursor, so a browser that reconnects (``Last-Event-ID``) misses nothing the
store still holds. A comment every 15 s keeps proxies from closing an idle
stream; the stream ends when the service starts draining, so a shutdown is
never held up by an open page.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from conveyor.errors import BadInputError
from conveyor.jobs.events import JobEvents
from conveyor.observability.logging import mask_data
from conveyor.stores.base import JobEvent, JobEventKind
from conveyor.web.admin.state import AdminState
from conveyor.web.admin.views import percent

KEEP_ALIVE_SECONDS = 15.0
BLOCK_SECONDS = 1.0
MAX_CURSOR = 200


async def job_stream(admin: AdminState, request: Request) -> StreamingResponse:
    params = request.query_params
    queue = params.get("queue") or None
    job_id = params.get("job") or None
    cursor = request.headers.get("last-event-id") or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        cursor = None
    events = admin.app.jobs.events(queue=queue, job_id=job_id, cursor=cursor)
    first: list[JobEvent] = []
    try:
        first = await events.next_batch(0)
    except BadInputError:  # a cursor this store does not know: start from now
        events = admin.app.jobs.events(queue=queue, job_id=job_id)
        await events.start()
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _frames(admin, events, first), media_type="text/event-stream", headers=headers
    )


async def _frames(
    admin: AdminState, events: JobEvents, first: list[JobEvent]
) -> AsyncIterator[str]:
    yield f"retry: 3000\nid: {events.cursor}\nevent: ready\ndata: {{}}\n\n"
    batch, last_sent = first, time.monotonic()
    while not admin.service.draining:
        if batch:
            yield "".join(_frame(event) for event in batch) + f"id: {events.cursor}\n\n"
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > KEEP_ALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        batch = await events.next_batch(BLOCK_SECONDS)


def _frame(event: JobEvent) -> str:
    data: dict[str, Any] = {"kind": event.kind.value, "job": event.job_id, "queue": event.queue}
    if event.kind is JobEventKind.PROGRESS and event.data is not None:
        value = mask_data(json.loads(event.data), "progress")
        data["progress"] = value
        data["percent"] = percent(value)
    return f"event: job\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
