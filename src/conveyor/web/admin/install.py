"""``install_admin``: the management API and the dashboard on a service."""

from __future__ import annotations

from starlette.applications import Starlette

from conveyor.web.admin.api import mount_api
from conveyor.web.admin.options import AdminOptions
from conveyor.web.admin.state import AdminState
from conveyor.web.state import ServiceState


def install_admin(web_app: Starlette, service: ServiceState, options: AdminOptions) -> None:
    """Mount the management API and the dashboard on ``web_app`` (nothing if disabled)."""
    if not options.enabled:
        return
    admin = AdminState(service, options)
    web_app.state.conveyor_admin = admin
    mount_api(web_app, admin)
    if options.dashboard_prefix is not None:
        from conveyor.web.dashboard import mount_dashboard

        mount_dashboard(web_app, admin)
