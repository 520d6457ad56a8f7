"""What each page shows: a context for its template, read with the API's own reads."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from conveyor.errors import BadInputError, ConveyorError, NotFoundError
from conveyor.events.deadletters import dead_letter
from conveyor.events.envelope import group_queue
from conveyor.jobs.search import search_value
from conveyor.stores.base import JobState
from conveyor.web.admin import reads, views
from conveyor.web.admin.state import AdminState
from conveyor.web.dashboard.charts import minute_bars

PAGE_SIZE = 50
CHART_MINUTES = 60
JOB_STATES = [s.value for s in JobState]


async def overview(admin: AdminState, request: Request) -> dict[str, Any]:
    app = admin.app
    counts = await app.jobs.counts()  # read once for the queues and the dead letters
    metrics = await reads.queues_metrics(app, CHART_MINUTES, counts=counts)
    completed = [sum(q.completed[i] for q in metrics.queues) for i in range(CHART_MINUTES)]
    failed = [sum(q.failed[i] for q in metrics.queues) for i in range(CHART_MINUTES)]
    cache = reads.cache_stats(app)
    hits = sum(n.hits for n in cache.namespaces)
    lookups = hits + sum(n.misses for n in cache.namespaces)
    groups = await reads.event_groups(app, counts)
    limits = await reads.rate_limits(app, CHART_MINUTES)
    return {
        "title": "Overview",
        "chart": minute_bars(metrics.start, completed, failed),
        "percentiles": await reads.overall_percentiles(app, CHART_MINUTES),
        "queues": metrics.queues,
        "workers": await reads.workers(app),
        "cache_ratio": hits / lookups if lookups else None,
        "cache_lookups": lookups,
        "dead_letters": sum(g.dead_letters for g in groups),
        "rejections": limits.rejected_by_tier,
        "health": await reads.health(app, admin.service.options.health_cache_seconds),
    }


async def queues(admin: AdminState, request: Request) -> dict[str, Any]:
    return {"title": "Queues", "queues": await reads.queue_list(admin.app)}


async def jobs(admin: AdminState, request: Request) -> dict[str, Any]:
    """Jobs by state (cursor pages), or the answer of a search when one is asked."""
    params = request.query_params
    app = admin.app
    state = params.get("state") or "active"
    queue = params.get("queue") or None
    cursor = params.get("cursor") or None
    search = {k: params.get(k, "").strip() for k in ("id", "task", "error", "field")}
    context: dict[str, Any] = {
        "title": "Jobs",
        "states": JOB_STATES,
        "state": state,
        "queue": queue,
        "search": search,
        "problem": None,
        "jobs": [],
        "next": None,
        "tasks": sorted(app.tasks),
    }
    try:
        if any(search.values()):
            page = await _search(admin, search, queue, cursor)
        else:
            page = await app.jobs.list_page(state, queue, cursor=cursor, limit=PAGE_SIZE)
    except BadInputError as exc:
        context["problem"] = str(exc)
        return context
    context["jobs"] = [views.job_summary(job) for job in page.jobs]
    context["next"] = page.next
    return context


async def _search(
    admin: AdminState, search: dict[str, str], queue: str | None, cursor: str | None
) -> Any:
    """An id finds that job, else the jobs whose id starts with it; a field is name=value."""
    app = admin.app
    field = None
    if search["field"]:
        name, sep, value = search["field"].partition("=")
        if not sep or not name.strip():
            raise BadInputError("a field search is name=value, e.g. customer_id=42")
        field = (name.strip(), search_value(value.strip()))
    criteria: dict[str, Any] = {
        "queue": queue,
        "task": search["task"] or None,
        "error_type": search["error"] or None,
        "field": field,
        "cursor": cursor,
        "limit": PAGE_SIZE,
    }
    if search["id"]:
        exact = await app.jobs.search(job_id=search["id"], **criteria)
        if exact.jobs or cursor:
            return exact
        return await app.jobs.search(id_prefix=search["id"], **criteria)
    return await app.jobs.search(**criteria)


async def job(admin: AdminState, request: Request) -> dict[str, Any]:
    detail = await reads.job_detail(admin.app, request.path_params["job_id"])
    link = admin.options.request_link
    return {
        "title": f"Job {detail.id}",
        "job": detail,
        "request_url": link.replace("{request_id}", detail.request_id)
        if link and detail.request_id
        else None,
    }


async def dead_letters(admin: AdminState, request: Request) -> dict[str, Any]:
    app = admin.app
    groups = await reads.event_groups(app)
    group = request.query_params.get("group") or None
    cursor = request.query_params.get("cursor") or None
    if group is None:
        letters = [views.dead_letter_out(d) for d in await app.events.dead_letters.list(limit=50)]
        following = None
    else:
        page = await app.jobs.list_page(
            JobState.FAILED, group_queue(group), cursor=cursor, limit=PAGE_SIZE
        )
        letters = [views.dead_letter_out(dead_letter(j)) for j in page.jobs]
        following = page.next
    return {
        "title": "Dead letters",
        "groups": groups,
        "group": group,
        "letters": letters,
        "next": following,
    }


async def schedules(admin: AdminState, request: Request) -> dict[str, Any]:
    found = [views.schedule_out(s) for s in await admin.app.schedules.list()]
    return {"title": "Schedules", "schedules": found}


async def cache(admin: AdminState, request: Request) -> dict[str, Any]:
    return {"title": "Cache", "cache": reads.cache_stats(admin.app)}


async def rate_limits(admin: AdminState, request: Request) -> dict[str, Any]:
    app = admin.app
    policy = request.query_params.get("policy") or None
    key = request.query_params.get("key") or None
    usage = problem = None
    if policy and key:
        try:
            usage = await app.rate_limits.usage(policy, key)
        except ConveyorError as exc:
            problem = str(exc)
    return {
        "title": "Rate limits",
        "limits": await reads.rate_limits(app, CHART_MINUTES),
        "policy": policy,
        "key": key,
        "usage": usage,
        "problem": problem,
    }


async def audit(admin: AdminState, request: Request) -> dict[str, Any]:
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and not cursor.isdigit():
        raise NotFoundError("not an audit cursor")
    page = await admin.app.audit.page(cursor, PAGE_SIZE)
    return {"title": "Audit log", "entries": page.entries, "next": page.next}
