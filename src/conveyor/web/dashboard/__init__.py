"""The dashboard: server-rendered pages over the management API's reads (issue 13).

routes.py      pages, live fragments, the event stream, sign-in/out, static files
pages.py       what each page shows (a template context from admin/reads.py)
actions.py     every button and the API call behind it
render.py      Jinja2 environment, filters, CSP and security headers, static files
stream.py      Server-Sent Events from app.jobs.events()
charts.py      per-minute bars as SVG (no chart library)
highlight.py   tracebacks highlighted by pygments (CSS classes)
templates/     the pages (Jinja2, autoescaped)
static/        dashboard.js and dashboard.css: ours, no third-party asset, no CDN
"""

from __future__ import annotations

from starlette.applications import Starlette

from conveyor.web.admin.state import AdminState


def mount_dashboard(web_app: Starlette, admin: AdminState) -> None:
    """Add the dashboard's routes under ``admin.options.dashboard_prefix``."""
    from conveyor.web.dashboard.routes import dashboard_routes

    web_app.router.routes.extend(dashboard_routes(admin))
