"""Every dashboard action is a management API call: the list, checked against the API.

The dashboard sends each action's request itself (``dashboard.js`` reads the
button's ``data-method`` and ``data-url``), so this table is the whole of
what the pages can do. A new button needs a line here and an API route.
"""

from __future__ import annotations

import re
from typing import Any

import httpx2 as httpx
import pytest

from conveyor import Conveyor
from conveyor.web.dashboard.actions import ACTIONS
from conveyor.web.service import bare_service

PARITY = {
    "queue.pause": ("POST", "/api/v1/queues/{queueName}/pause"),
    "queue.resume": ("POST", "/api/v1/queues/{queueName}/resume"),
    "queue.retry_failed": ("POST", "/api/v1/queues/{queueName}/retry-failed"),
    "queue.clean": ("POST", "/api/v1/queues/{queueName}/clean"),
    "job.add": ("POST", "/api/v1/queues/{queueName}/jobs"),
    "job.retry": ("POST", "/api/v1/jobs/{jobId}/retry"),
    "job.promote": ("POST", "/api/v1/jobs/{jobId}/promote"),
    "job.cancel": ("POST", "/api/v1/jobs/{jobId}/cancel"),
    "job.remove": ("DELETE", "/api/v1/jobs/{jobId}"),
    "schedule.pause": ("POST", "/api/v1/schedules/{name}/pause"),
    "schedule.resume": ("POST", "/api/v1/schedules/{name}/resume"),
    "schedule.trigger": ("POST", "/api/v1/schedules/{name}/trigger"),
    "schedule.remove": ("DELETE", "/api/v1/schedules/{name}"),
    "dead_letter.replay": ("POST", "/api/v1/events/dead-letters/{letterId}/replay"),
    "dead_letter.replay_all": ("POST", "/api/v1/events/dead-letters/replay"),
    "dead_letter.purge": ("DELETE", "/api/v1/events/dead-letters"),
    "cache.invalidate": ("POST", "/api/v1/cache/invalidate"),
    "rate_limit.reset": ("POST", "/api/v1/rate-limits/{policy}/reset"),
}

PRODUCT_PATHS = [
    ("GET", "/api/v1/queues/metrics"),
    ("GET", "/api/v1/queues/{queueName}/metrics"),
    ("POST", "/api/v1/queues/{queueName}/jobs"),
    ("GET", "/api/v1/queues/{queueName}/jobs/{jobId}"),
    ("DELETE", "/api/v1/queues/{queueName}/jobs/{jobId}"),
    ("POST", "/api/v1/queues/{queueName}/pause"),
    ("POST", "/api/v1/queues/{queueName}/resume"),
    ("POST", "/api/v1/queues/{queueName}/clean"),
]
"""The endpoints the products' clients call, at exactly these paths."""


def document() -> dict[str, Any]:
    schema: dict[str, Any] = bare_service(Conveyor("memory://")).openapi()
    return schema


def test_the_parity_table_is_every_dashboard_action() -> None:
    assert set(PARITY) == set(ACTIONS)
    for name, action in ACTIONS.items():
        assert PARITY[name] == (action.method, "/api/v1" + action.path), name


@pytest.mark.parametrize(("name", "call"), sorted(PARITY.items()))
def test_each_action_is_an_operation_of_the_api_document(name: str, call: tuple[str, str]) -> None:
    method, path = call
    operation = document()["paths"].get(path, {}).get(method.lower())
    assert operation is not None, f"{name}: {method} {path} is not in the OpenAPI document"
    assert "default" in operation["responses"]  # its errors are problem+json


def test_the_products_endpoints_exist_at_their_paths() -> None:
    paths = document()["paths"]
    for method, path in PRODUCT_PATHS:
        assert method.lower() in paths.get(path, {}), f"{method} {path}"


async def test_every_button_on_every_page_is_a_listed_action() -> None:
    app = Conveyor("memory://")

    @app.task(queue="mail")
    async def send(to: str) -> None:
        raise RuntimeError("smtp down")

    await app.schedules.add(send.call("ops@example.com"), every=60, name="digest")
    web = bare_service(app)
    seen: set[str] = set()
    async with app:
        failed = await send.enqueue("a@example.com")
        await app.work(burst=True)
        await send.enqueue("b@example.com")
        transport = httpx.ASGITransport(app=web, client=("127.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for path in [
                "/dashboard/",
                "/dashboard/queues",
                "/dashboard/jobs?state=failed",
                "/dashboard/jobs?state=waiting",
                f"/dashboard/jobs/{failed.id}",
                "/dashboard/dead-letters",
                "/dashboard/schedules",
                "/dashboard/cache",
                "/dashboard/rate-limits",
                "/dashboard/audit",
            ]:
                page = (await client.get(path)).text
                for name, method, url in re.findall(
                    r'data-action="([^"]+)" data-method="([^"]+)" data-url="([^"]+)"', page
                ):
                    expected_method, template = PARITY[name]
                    assert method == expected_method
                    pattern = re.sub(r"\\\{\w+\\\}", "[^/?]+", re.escape(template)) + r"(\?.*)?"
                    assert re.fullmatch(pattern, url.replace("&amp;", "&")), (name, url)
                    seen.add(name)
    assert {"queue.pause", "queue.clean", "job.retry", "job.remove", "schedule.trigger"} <= seen
