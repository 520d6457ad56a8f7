"""The dashboard in headless Chromium against a real ``conveyor serve`` (SQLite store).

What an operator does (watch a job move, retry, pause and resume, replay a
dead letter, find a job) and what a viewer cannot, each through the pages;
then every page is checked by axe-core. A console error anywhere fails the
test that saw it (``conftest.Watched``).
"""

from __future__ import annotations

import time

import httpx2 as httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import Service, run_axe, screenshots_directory

PAGES = [
    "/dashboard/",
    "/dashboard/queues",
    "/dashboard/jobs",
    "/dashboard/jobs?state=completed",
    "/dashboard/dead-letters",
    "/dashboard/schedules",
    "/dashboard/cache",
    "/dashboard/rate-limits",
    "/dashboard/audit",
]


def enqueue_report(service: Service, customer_id: int, steps: int = 20) -> str:
    with service.api(service.operator_token) as api:
        answer = api.post(
            "/queues/reports/jobs",
            json={
                "task": "tests.browser.dashboard_app.build_report",
                "kwargs": {"customer_id": customer_id, "steps": steps, "api_token": "s3cret"},
            },
        )
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def moved(job_id: str, past: float) -> str:
    """A page function: true once the job's progress bar shows more than ``past``."""
    bar = f"document.querySelector('progress[data-progress-for=\"{job_id}\"]')"
    return f"() => {bar} !== null && {bar}.value > {past}"


def wait_live(page: Page) -> None:
    """Until the page's event stream is connected (it then says "live")."""
    expect(page.locator("[data-live-state]")).to_have_text("live", timeout=5000)


def test_an_enqueued_job_appears_and_its_progress_bar_moves_without_a_reload(
    operator: Page, service: Service
) -> None:
    operator.goto("/dashboard/jobs?state=active&queue=reports")
    wait_live(operator)
    operator.evaluate("window.notReloaded = true")
    job_id = enqueue_report(service, customer_id=7)
    started = time.monotonic()
    bar = operator.locator(f'progress[data-progress-for="{job_id}"]')
    expect(bar).to_be_visible(timeout=2000)
    first = float(bar.get_attribute("value") or 0)
    operator.wait_for_function(moved(job_id, first), timeout=2000)
    assert time.monotonic() - started < 4.0
    assert operator.evaluate("window.notReloaded") is True
    # The job page's bar moves too, and the secret argument is masked on it.
    operator.goto(f"/dashboard/jobs/{job_id}")
    wait_live(operator)
    detail_bar = operator.locator(f'progress[data-progress-for="{job_id}"]')
    before = float(detail_bar.get_attribute("value") or 0)
    operator.wait_for_function(moved(job_id, before), timeout=2000)
    expect(operator.locator("pre.data")).to_contain_text('"api_token": "***"')
    expect(operator.locator("body")).not_to_contain_text("s3cret")


def test_a_failed_job_is_retried_from_its_page(operator: Page, service: Service) -> None:
    with service.api(service.operator_token) as api:
        job = api.post(
            "/queues/billing/jobs",
            json={"task": "tests.browser.dashboard_app.charge_card", "args": [501]},
        ).json()
    operator.goto(f"/dashboard/jobs/{job['id']}")
    expect(operator.locator("[data-state]")).to_contain_text("failed", timeout=5000)
    expect(operator.locator("#h-error")).to_contain_text("ConnectionError")
    expect(operator.locator("pre.highlight")).to_contain_text("card processor unreachable")
    operator.click("button[data-action='job.retry']")
    expect(operator.locator("[data-state]")).to_contain_text("completed", timeout=5000)
    expect(operator.locator(".timeline")).to_contain_text("failed")


def test_a_queue_is_paused_and_resumed_from_the_queues_page(
    operator: Page, service: Service
) -> None:
    operator.goto("/dashboard/queues")
    row = operator.locator('tr[data-queue="reports"]')
    row.locator("button[data-action='queue.pause']").click()
    expect(row.locator(".badge.paused")).to_be_visible(timeout=3000)
    with service.api(service.operator_token) as api:
        assert api.get("/queues/reports/metrics").json()["paused"] is True
    row.locator("button[data-action='queue.resume']").click()
    expect(row.locator(".badge.running")).to_be_visible(timeout=3000)
    with service.api(service.operator_token) as api:
        assert api.get("/queues/reports/metrics").json()["paused"] is False
        audit = api.get("/audit").json()["entries"]
    assert [e["action"] for e in audit[:2]] == ["queue.resume", "queue.pause"]
    assert audit[0]["actor"] == "ops"


def test_a_dead_letter_is_replayed(operator: Page, service: Service) -> None:
    httpx.post(service.url + "/invoices/77/sent", timeout=5).raise_for_status()
    operator.goto("/dashboard/dead-letters?group=mailer")
    letter = operator.locator("tr[data-letter]").filter(has_text="smtp refused invoice 77")
    expect(letter).to_be_visible(timeout=5000)
    letter.locator("button[data-action='dead_letter.replay']").click()
    expect(operator.locator("#flash")).to_contain_text("Done", timeout=3000)
    expect(letter).to_have_count(0, timeout=5000)
    assert (service.marks / "mail-77").exists()


def test_a_job_is_found_by_its_id_and_by_a_payload_field(operator: Page, service: Service) -> None:
    job_id = enqueue_report(service, customer_id=4242, steps=1)
    enqueue_report(service, customer_id=4343, steps=1)
    operator.goto("/dashboard/jobs")
    operator.fill("input[name=id]", job_id)
    operator.click("form.search button[type=submit]")
    expect(operator.locator("table.jobs tbody tr")).to_have_count(1)
    expect(operator.locator(f'tr[data-job="{job_id}"]')).to_be_visible()
    operator.goto("/dashboard/jobs")
    operator.fill("input[name=field]", "customer_id=4242")
    operator.click("form.search button[type=submit]")
    expect(operator.locator("table.jobs tbody tr")).to_have_count(1)
    expect(operator.locator(f'tr[data-job="{job_id}"]')).to_be_visible()


def test_a_viewer_sees_no_action_and_the_api_refuses_it_the_action(
    viewer: Page, service: Service
) -> None:
    for path in PAGES:
        viewer.goto(path)
        assert viewer.locator("[data-action]").count() == 0, path
    viewer.goto("/dashboard/queues")
    expect(viewer.locator('tr[data-queue="reports"]')).to_be_visible()
    refused = viewer.request.post(service.url + "/api/v1/queues/reports/pause")
    assert refused.status == 403
    assert refused.headers["content-type"] == "application/problem+json"
    with service.api(service.viewer_token) as api:
        assert api.post("/queues/reports/pause").status_code == 403
        assert api.get("/queues").status_code == 200


def test_without_credentials_only_loopback_gets_in(service: Service) -> None:
    with service.api() as api:
        assert api.get("/whoami").json() == {
            "actor": "loopback",
            "role": "viewer",
            "via": "loopback",
        }
        # Through the trusted proxy (127.0.0.1) from a remote client: no credentials, 401.
        remote = api.get("/queues", headers={"X-Forwarded-For": "203.0.113.9"})
        assert remote.status_code == 401
        assert remote.headers["www-authenticate"].startswith("Bearer")
        page = httpx.get(
            service.url + "/dashboard/", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5
        )
        assert page.status_code == 303
        assert "/dashboard/sign-in" in page.headers["location"]
        # A loopback Host is required too (DNS rebinding), and a wrong key is never ignored.
        assert api.get("/queues", headers={"Host": "evil.example"}).status_code == 401
        assert api.get("/queues", headers={"X-API-Key": "cvk_wrong"}).status_code == 401


def test_cross_site_actions_are_refused(operator: Page, service: Service) -> None:
    operator.goto("/dashboard/queues")
    refused = operator.request.post(
        service.url + "/api/v1/queues/reports/pause", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert refused.status == 403
    refused = operator.request.post(
        service.url + "/api/v1/queues/reports/pause", headers={"Origin": "https://evil.example"}
    )
    assert refused.status == 403


def test_every_page_passes_axe_with_no_serious_or_critical_violation(
    operator: Page, service: Service
) -> None:
    job_id = enqueue_report(service, customer_id=99, steps=2)
    with service.api(service.operator_token) as api:
        failed = api.post(
            "/queues/billing/jobs",
            json={"task": "tests.browser.dashboard_app.charge_card", "args": [909]},
        ).json()["id"]
    time.sleep(1.5)
    for path in [*PAGES, f"/dashboard/jobs/{job_id}", f"/dashboard/jobs/{failed}"]:
        operator.goto(path)
        violations = run_axe(operator)
        assert violations == [], (path, [(v["id"], v["help"], v["nodes"][:2]) for v in violations])
    operator.context.clear_cookies()
    operator.goto("/dashboard/sign-in")
    assert run_axe(operator) == []


def test_screenshots_of_the_overview_and_a_job(operator: Page, service: Service) -> None:
    """Saved for docs/images when DASH_SCREENSHOTS names a directory."""
    target = screenshots_directory()
    job_id = enqueue_report(service, customer_id=31, steps=40)
    with service.api(service.operator_token) as api:
        for invoice in (1, 2, 3):
            api.post(
                "/queues/billing/jobs",
                json={"task": "tests.browser.dashboard_app.charge_card", "args": [invoice]},
            )
    time.sleep(3)
    operator.set_viewport_size({"width": 1280, "height": 900})
    operator.goto("/dashboard/")
    wait_live(operator)
    expect(operator.locator("figure.chart svg")).to_be_visible()
    if target is not None:
        operator.screenshot(path=str(target / "overview.png"), full_page=True)
    operator.goto(f"/dashboard/jobs/{job_id}")
    wait_live(operator)
    if target is not None:
        operator.screenshot(path=str(target / "job.png"), full_page=True)
