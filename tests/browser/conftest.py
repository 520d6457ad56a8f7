"""A real ``conveyor serve`` of ``dashboard_app`` and headless Chromium (Debian's, not a
downloaded build) driven by Playwright.

Every page a test opens is watched: a console error or an uncaught exception
fails the test at teardown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from conveyor import new_api_key
from tests.web_server import ServiceProcess, running_service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI: Chromium's sandbox refuses to start as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"

if not Path(CHROMIUM).exists():  # scripts/test installs it; a bare pytest run may lack it
    pytest.skip(
        "Debian's chromium is not installed (scripts/test installs it)", allow_module_level=True
    )


@dataclass
class Service:
    """The served app, its URL and the tokens of its two keys."""

    server: ServiceProcess
    operator_token: str
    viewer_token: str
    marks: Path

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=10)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("dashboard")
    operator_token, operator = new_api_key("ops", "operator")
    viewer_token, viewer = new_api_key("watcher", "viewer")
    marks = directory / "marks"
    marks.mkdir()
    env = {
        "DASH_TEST_URL": f"sqlite:///{directory / 'conveyor.db'}",
        "DASH_TEST_MARKS": str(marks),
        "CONVEYOR_ADMIN_KEYS": f"{operator.line()},{viewer.line()}",
    }
    with running_service(
        "tests.browser.dashboard_app:api", directory / "server.log", env=env
    ) as server:
        yield Service(server, operator_token, viewer_token, marks)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, not per session: Playwright's sync API runs its own event loop, which must
    # be gone before pytest-asyncio runs the async tests of the other directories.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """Console errors and page errors seen by every page of a context."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("dialog", lambda d: d.accept())


def signed_in(browser: Browser, service: Service, token: str, watched: Watched) -> BrowserContext:
    context = browser.new_context(base_url=service.url)
    context.on("page", watched.watch)
    page = context.new_page()
    page.goto("/dashboard/sign-in")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    page.close()
    return context


@pytest.fixture
def watched() -> Iterator[Watched]:
    found = Watched()
    yield found
    assert found.errors == [], "console errors: " + "; ".join(found.errors)


@pytest.fixture
def operator(browser: Browser, service: Service, watched: Watched) -> Iterator[Page]:
    context = signed_in(browser, service, service.operator_token, watched)
    yield context.new_page()
    context.close()


@pytest.fixture
def viewer(browser: Browser, service: Service, watched: Watched) -> Iterator[Page]:
    context = signed_in(browser, service, service.viewer_token, watched)
    yield context.new_page()
    context.close()


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.evaluate(AXE.read_text())  # evaluated by the driver: the page's CSP does not apply
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def screenshots_directory() -> Path | None:
    """Where to save the documentation's screenshots (``DASH_SCREENSHOTS``), if anywhere."""
    target = os.environ.get("DASH_SCREENSHOTS")
    return Path(target) if target else None
