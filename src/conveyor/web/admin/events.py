"""``/events``: subscriber groups and their backlog; dead letters: list, show, replay, purge."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from conveyor.events.deadletters import dead_letter
from conveyor.events.envelope import group_queue
from conveyor.stores.base import JobState
from conveyor.web.admin import reads, schemas, views
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.queues import CURSOR, LIMIT
from conveyor.web.admin.state import AdminState, guards

LETTER = Path(alias="letterId", min_length=1, max_length=300)
GROUP = Query(None, min_length=1, max_length=200)


def event_routes(admin: AdminState) -> APIRouter:
    viewer, operator = guards(admin)
    app = admin.app
    router = APIRouter(prefix="/events", tags=["events"])

    @router.get("/groups", summary="Subscriber groups: event types, backlog, dead letters")
    async def groups(_: Principal = Depends(viewer)) -> list[schemas.GroupOut]:
        return await reads.event_groups(app)

    @router.get("/dead-letters", summary="Dead letters of a group (or of all), newest first")
    async def list_letters(
        group: str | None = GROUP,
        cursor: str | None = CURSOR,
        limit: int = LIMIT,
        _: Principal = Depends(viewer),
    ) -> schemas.DeadLetterPage:
        if group is None:  # the newest of each group: bounded by limit per group
            letters = await app.events.dead_letters.list(limit=limit)
            return schemas.DeadLetterPage(
                dead_letters=[views.dead_letter_out(d) for d in letters], next=None
            )
        page = await app.jobs.list_page(
            JobState.FAILED, group_queue(group), cursor=cursor, limit=limit
        )
        return schemas.DeadLetterPage(
            dead_letters=[views.dead_letter_out(dead_letter(job)) for job in page.jobs],
            next=page.next,
        )

    @router.get("/dead-letters/{letterId}", summary="One dead letter")
    async def show(
        letter_id: str = LETTER, _: Principal = Depends(viewer)
    ) -> schemas.DeadLetterOut:
        return views.dead_letter_out(await app.events.dead_letters.get(letter_id))

    @router.post("/dead-letters/{letterId}/replay", summary="Send one dead letter back")
    async def replay(
        request: Request, letter_id: str = LETTER, who: Principal = Depends(operator)
    ) -> schemas.CountOut:
        await app.events.dead_letters.replay(letter_id)
        await admin.audit(
            request, who, "dead_letter.replay", f"delivery:{letter_id}", {"replayed": 1}
        )
        return schemas.CountOut(count=1)

    @router.post("/dead-letters/replay", summary="Send every dead letter (of a group) back")
    async def replay_all(
        body: schemas.ReplayAllIn, request: Request, who: Principal = Depends(operator)
    ) -> schemas.CountOut:
        count = await app.events.dead_letters.replay_all(body.group)
        target = f"group:{body.group}" if body.group else "groups:*"
        await admin.audit(request, who, "dead_letter.replay_all", target, {"replayed": count})
        return schemas.CountOut(count=count)

    @router.delete("/dead-letters", summary="Purge dead letters (of a group) older than an age")
    async def purge(
        request: Request,
        group: str | None = GROUP,
        older_than_seconds: float = Query(0.0, ge=0, le=10 * 366 * 86_400),
        who: Principal = Depends(operator),
    ) -> schemas.CountOut:
        count = await app.events.dead_letters.purge(group, older_than_seconds)
        target = f"group:{group}" if group else "groups:*"
        await admin.audit(request, who, "dead_letter.purge", target, {"purged": count})
        return schemas.CountOut(count=count)

    return router
